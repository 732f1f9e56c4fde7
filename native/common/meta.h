/* File metadata applied beneath a root (velo-meta, and velo-converge's apply phase): owners, mode, times, xattrs,
 * and the nodes that are only metadata (fifos, devices, whiteouts). Every path is resolved beneath the root with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a symlink in the tree can never redirect an operation outside it.
 * Order inside one record: chown before chmod (chown clears setuid bits), xattrs after both (chown clears
 * security.capability), times last. A directory's record goes after its children's, so making them does not move
 * its mtime afterwards. */
#ifndef VELO_META_H
#define VELO_META_H
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "velo_err.h"

/* type: f file, d dir, l symlink (these must exist), p fifo, c char dev, b block dev, w overlay whiteout (made if
 * absent); flags bit 0: opaque dir (trusted.overlay.opaque=y, user.overlay.opaque for a rootless store), bit 1: the
 * xattrs are the whole set (any other attribute is removed but security.selinux), bit 2: refused on a non-directory
 * with more than one link (its inode may be shared with a path outside the root: a restore's 'M'); xattrs_hex: a
 * canonical xattr block (velo_xattrs.h) in hex, "" or NULL for none */
struct velo_meta {
  char *path;
  char type;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  struct timespec mtime;
  dev_t rdev;
  unsigned flags;
  const char *xattrs_hex;
};

/* Apply R to its path beneath ROOT (an O_PATH directory fd); -1 with ERR on the first failure. */
int velo_meta_apply(int root, struct velo_meta *r, int do_chown, struct velo_err *err);
/* PATH opened beneath ROOT (no symlink followed, no escape) with FLAGS. */
int velo_open_beneath(int root, const char *path, int flags, struct velo_err *err);
/* The parent of PATH opened beneath ROOT (O_PATH), and its last component in *BASE (PATH is restored). */
int velo_open_parent(int root, char *path, const char **base, struct velo_err *err);

#endif
