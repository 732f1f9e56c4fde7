/* Placeholders: how solid projections stand in for a regular file of the image.
 *
 * A placeholder is a real, private inode at the file's path: a sparse file of the image file's size (no
 * blocks), with the image's mode, mtime (and owner, when velo runs as root), carrying the xattr
 * "user.velo" = 61 bytes: 'V', BLAKE3 hash (32), size (u64), object mode (u32), uid (u32), gid (u32),
 * object st_blocks (u64), little-endian — small enough to live inside the inode (ext4: no xattr block, so
 * the placeholder keeps st_blocks == 0; velo-project checks this and refuses a filesystem where it fails).
 * The object's path is velo_object_path()'s (native/common, the same layout as src/store/cas.ts). The shim
 * recognises a placeholder from a stat result it already has (regular, size > 0, st_blocks == 0) and
 * confirms with the xattr, so ordinary files cost no extra system call, and the kernel keeps doing all
 * path resolution. */
#ifndef VELO_PH_H
#define VELO_PH_H
#include <limits.h>
#include <sys/stat.h>
#include <sys/types.h>

#define VELO_XATTR_OBJ "user.velo"
#define VELO_PH_VALUE_LEN 61
#define VELO_XATTR_STAMP "user.velo.image"

struct velo_ph {
  long long blocks;
  char obj[PATH_MAX];
};

/* Could this stat result be a placeholder? (No system call.) */
static inline int velo_ph_maybe(const struct stat *st) {
  return S_ISREG(st->st_mode) && st->st_size > 0 && st->st_blocks == 0;
}

/* The store's cas/blake3 directory (shim: $VELO_SHIM_CAS, else $VELO_HOME/cas/blake3). */
extern char velo_cas[PATH_MAX];
/* Encode a placeholder value (buf: VELO_PH_VALUE_LEN bytes). */
void velo_ph_encode(unsigned char *buf, const unsigned char hash[32], unsigned long long size, unsigned mode, unsigned uid,
                    unsigned gid, unsigned long long blocks);
/* Parse an xattr value. 1 = valid placeholder value, 0 = not ours. */
int velo_ph_parse(const char *val, ssize_t n, struct velo_ph *ph);
/* Read the placeholder xattr by fd, or by path (follow = follow a final symlink). 1 = placeholder. */
int velo_ph_get_fd(int fd, struct velo_ph *ph);
int velo_ph_get_path(const char *path, int follow, struct velo_ph *ph);

/* Replace the placeholder at PATH (no symlinks in its last component) with a private, real copy of its
 * object: copy into a temp file in the same directory, give it the placeholder's mode/owner/times, rename
 * over. Serialised between processes with flock on the placeholder; a no-op if someone else won. The CAS
 * object is only ever opened read-only. 0 = done, < 0 = error (errno set). */
int velo_ph_materialize(const char *path);

/* Absolute path of what an fd refers to (readlink of /proc/self/fd/N). */
int velo_fd_path(int fd, char *buf, size_t len);

#endif
