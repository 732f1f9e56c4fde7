/* Read-only access to velo's layer manifests (the LMDB file the Node side writes) and the merged view of
 * an image's layers, shared by the LD_PRELOAD shim and the FUSE daemon. Format: docs/format.md and
 * src/manifest/entry.ts — the two must agree byte for byte. */
#ifndef VELO_MANIFEST_H
#define VELO_MANIFEST_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "lmdb.h"
#include "velo_err.h"

#define VELO_ENTRY_SIZE 88
#define VELO_ENTRY_VERSION 1
/* Entries with extended attributes (docs/format.md): u32 target_len @88, u32 xattrs_len @92, 16-byte xattr
 * digest @96 (the CAS object-name suffix), target @112, then the xattr block (velo_xattrs.h). */
#define VELO_ENTRY_VERSION_XATTRS 2
#define VELO_ENTRY_V2_FIXED 112
#define VELO_KEY_PREFIX 36
#define VELO_ROOT_INO 1
#define VELO_FLAG_OPAQUE 1u
#define VELO_FLAG_WHITEOUT 2u
#define VELO_MAX_LAYERS 256

struct velo_entry {
  uint8_t hash[32];
  uint64_t size;
  int64_t mtime_sec;
  uint64_t rdev;
  uint32_t mtime_nsec;
  uint32_t mode; /* full st_mode */
  uint32_t uid, gid;
  uint32_t ino;   /* layer-local */
  uint32_t nlink; /* entries in the layer sharing ino */
  uint32_t flags;
  const char *target; /* symlink target, NOT NUL-terminated; points into the LMDB map (valid while the txn lives) */
  size_t target_len;
  /* extended attributes (v2 entries): the canonical block (velo_xattrs.h) in the LMDB map, or NULL/0 */
  const void *xattrs;
  size_t xattrs_len;
  uint8_t xattr_digest[16]; /* valid when xattrs != NULL: object-name suffix "_x<32 hex>" */
};

struct velo_unreg;

struct velo_store {
  MDB_env *env;
  MDB_dbi entries;
  char *home;
  char *cas_dir; /* <home>/cas/blake3 */
  /* A reader that may not write the LMDB lock file (a store shared for reading, docs/format.md) reads
   * unregistered (MDB_NOLOCK): LMDB cannot tell a writer which pages it still reads, so it holds a shared flock
   * on the database file while it reads, and every velo write transaction holds the exclusive one
   * (src/manifest/db.ts). NULL for a registered reader. */
  struct velo_unreg *unreg;
};

/* An image's merged view: its layers, TOP FIRST (index 0 = uppermost). */
struct velo_view {
  struct velo_store *store;
  int n_layers;
  uint8_t layers[VELO_MAX_LAYERS][32];
};

/* A merged directory: the layers that contribute to it (top first) and the dir's ino in each. */
struct velo_dir {
  int n;
  struct {
    uint16_t layer;
    uint32_t ino;
  } at[VELO_MAX_LAYERS];
};

/* Open the store's manifest database read-only. An unregistered reader (above) holds the database's shared
 * flock from here to velo_store_close; with VELO_STORE_LOCK_PER_TXN (a long-lived reader such as the FUSE
 * daemon) only from each velo_txn_begin to its velo_txn_end, so the owner's writes wait for one read, not for
 * the reader's whole life. */
#define VELO_STORE_LOCK_PER_TXN 1
int velo_store_open(struct velo_store *st, const char *home, struct velo_err *err);
int velo_store_open_flags(struct velo_store *st, const char *home, int flags, struct velo_err *err);
void velo_store_close(struct velo_store *st);

/* Parse 64 hex chars into 32 bytes; < 0 when malformed. */
int velo_parse_layer_id(uint8_t out[32], const char *hex, struct velo_err *err);

/* Decode a raw LMDB value into an entry; < 0 when too short or of another version. */
int velo_entry_decode(const MDB_val *v, struct velo_entry *out, struct velo_err *err);

/* Path of the CAS object holding a regular file's content (only for size > 0). */
int velo_object_path(const struct velo_store *st, const struct velo_entry *e, char *buf, size_t len);

/* One layer: child NAME of directory PARENT_INO. 1 = found, 0 = absent, < 0 = error. */
int velo_layer_child(MDB_txn *txn, const struct velo_store *st, const uint8_t layer[32], uint32_t parent_ino,
                     const char *name, size_t name_len, struct velo_entry *out, struct velo_err *err);

/* Open a read transaction (MDB_RDONLY); the caller ends it with velo_txn_end (mdb_txn_abort will do unless
 * the store was opened with VELO_STORE_LOCK_PER_TXN). Thread-safe. */
int velo_txn_begin(const struct velo_store *st, MDB_txn **txn, struct velo_err *err);
void velo_txn_end(const struct velo_store *st, MDB_txn *txn);

/* An image's record (the JSON value of the `images` DB, keyed by the name as plain UTF-8, which is how
 * ordered-binary stores a string key): *json is a malloc'd NUL-terminated copy. Returns 1 when found, 0 when
 * there is no such image (or no images table yet), -1 on error. */
int velo_image_get(const struct velo_store *st, const char *name, char **json, struct velo_err *err);

/* Any record of a JSON-valued DB keyed by a string (`images`, `holds`): same contract as velo_image_get. */
int velo_record_get(const struct velo_store *st, const char *db, const char *key, char **json, struct velo_err *err);

int velo_view_init(struct velo_view *v, struct velo_store *st, const char *const *layer_ids_top_first, int n,
                   struct velo_err *err);

/* The merged root directory of the view. 1 = ok, < 0 error. Its entry is the top layer's root. */
int velo_view_root(MDB_txn *txn, const struct velo_view *v, struct velo_dir *dir, struct velo_entry *entry,
                   struct velo_err *err);

/* Look NAME up in merged directory DIR with OCI/overlay semantics: the uppermost layer that has NAME wins;
 * a whiteout hides it; a non-directory or an opaque directory hides lower layers. If the result is a
 * directory and SUBDIR is non-NULL, SUBDIR receives its contributing layers. 1 = found, 0 = absent. */
int velo_view_lookup(MDB_txn *txn, const struct velo_view *v, const struct velo_dir *dir, const char *name,
                     size_t name_len, struct velo_entry *out, struct velo_dir *subdir, int *layer_out,
                     struct velo_err *err);

/* Resolve a relative path ("a/b/c", no leading slash needed; "" or "." is the root) component by component
 * WITHOUT following symlinks in any component (the caller decides about symlinks). 1 found, 0 absent (also
 * when a non-final component is not a directory), < 0 error. */
int velo_view_resolve(MDB_txn *txn, const struct velo_view *v, const char *path, struct velo_entry *out,
                      struct velo_dir *dir_out, int *layer_out, struct velo_err *err);

/* Merged listing of DIR in name order: each visible name once (uppermost wins), whiteouts applied and never
 * reported. The callback returns 0 to continue, non-zero to stop (that value is returned). */
typedef int (*velo_readdir_cb)(void *ctx, const char *name, size_t name_len, const struct velo_entry *e, int layer);
int velo_view_readdir(MDB_txn *txn, const struct velo_view *v, const struct velo_dir *dir, velo_readdir_cb cb,
                      void *ctx, struct velo_err *err);

#endif
