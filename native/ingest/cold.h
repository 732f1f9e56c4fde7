/* What the parts of velo-cold share: velo-cold.c (the verbs, the object helpers, main), cold-cdc.c (content-defined
 * chunks of large objects), cold-packs.c (packs of small objects). One program: the globals are its run's, set by main. */
#ifndef VELO_COLD_H
#define VELO_COLD_H
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include "blake3.h"
#include "records.h"

#define BUF (1u << 20)
#define LEVEL 3 /* zstd -3: 4x faster than -9 here for 15% more bytes (a node_modules tree); gc holds the store meanwhile */
#define CDC_MIN_BYTES (8u << 20) /* smaller cold objects are compressed whole */
#define PACK_OBJ_MAX (64u << 10) /* objects under this go into packs; larger ones are compressed one by one */
#define FRAME_RAW (128u << 10)
#define PACK_RAW_MAX (64u << 20)
#define PACK_MAGIC "VELOPAK1"
#define TRAILER 24
#define NPOS_NONE ((size_t)-1)

/* the run's store: its CAS dir, temp dir, chunk dir and pack dir, and open fds of them; ROOT; two 1 MiB buffers */
extern const char *cas_dir, *tmp_dir, *chunk_dir, *pack_dir;
extern int cas_fd, chunk_fd, pack_fd, as_root;
extern uint8_t *in_buf, *out_buf;

struct oname {
  char hash[65];
  uint64_t size;
  unsigned mode, uid, gid;
};

/* "velo-cold: PATH: what: strerror" on stderr, exit 1 */
void die(const char *path, const char *what);
/* "velo-cold: COLD: damaged: WHY" on stderr, exit 1 */
void damaged(const char *cold, const char *why);
int parse_name(const char *n, struct oname *o);
void write_all(int fd, const void *p, size_t n, const char *what);
int open_temp(char *tmp, size_t cap);
const char *unpack_as(int fd, int out, const char *hash, uint64_t size, blake3_hasher *outer, const char *what);
const char *unpack(int fd, int out, const struct oname *o, const char *what);
/* the plain object NAME is there (made plain meanwhile) */
int plain_now(const char *name);

static inline void put_u32(uint8_t *b, uint32_t v) { b[0] = v & 255, b[1] = (v >> 8) & 255, b[2] = (v >> 16) & 255, b[3] = v >> 24; }
static inline uint32_t get_u32(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }
static inline void put_u64(uint8_t *b, uint64_t v) {
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t get_u64(const uint8_t *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

/* ---- cold-cdc.c ---- */
void cdc_init(void);
const char *chunk_object(int fd, const struct oname *o, const char *name, ZSTD_CCtx *c, char *tmp, size_t cap, uint64_t *new_bytes, uint64_t *chunks, uint64_t *fresh);
extern char bad_chunk[65];
const char *unchunk(int rfd, int out, const struct oname *o, const char *what);
void place_new_chunks(void);
void sweep_chunks(void);

/* ---- cold-packs.c ---- */
struct pentry {
  char *name; /* "<h0h1>/<name>" */
  uint64_t size, foff;
  uint32_t flen, ioff, pack;
  size_t next; /* 1 + index of the next copy of the same name (a later pack), 0: none */
  int dup, drop, extra; /* dup: not the first copy; drop: to go; extra: redundant beside a good copy */
};
struct pack {
  char *file;
  uint64_t bytes, raw, dead_raw;
  const char *bad; /* why it cannot be read (whole), or NULL */
  int io_error;    /* bad for an I/O error (EACCES, EIO...: errno in io_error), not for its format */
  int rewrite, salvage; /* salvage: rewritten with what reads back right (fsck --repair of a damaged pack) */
};
struct done_pack {
  char *tmp, hex[65];
};
extern struct pack *packs;
extern size_t unloaded;
extern struct done_pack *done_packs;
extern size_t n_done_packs;
extern char **drop_names;
extern size_t n_drop;
void load_packs(void);
struct pentry *pack_find(const char *name);
const struct pentry *packed_read(const struct pentry *e, int out, const struct oname *o, const char **why);
int pack_small(ZSTD_CCtx *c, const char *name, const struct oname *o, int fd);
void pw_finish(ZSTD_CCtx *c);
void place_done_packs(void);
void compact(double threshold);
void list_packed(void);

#endif
