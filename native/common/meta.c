/* File metadata applied beneath a root: meta.h. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "meta.h"
#include "velo_xattrs.h"


static int unhex(const char *hex, uint8_t **out, size_t *len, struct velo_err *err) {
  size_t n = strlen(hex);
  if (n % 2) return velo_fail(err, 0, "odd-length hex");
  *out = malloc(n / 2 + 1);
  if (!*out) return velo_fail(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i += 2) {
    unsigned v;
    if (sscanf(hex + i, "%2x", &v) != 1) return velo_fail(err, 0, "bad hex");
    (*out)[i / 2] = (uint8_t)v;
  }
  *len = n / 2;
  return 0;
}

/* Set the attributes of a canonical block on DIR/BASE (no final symlink followed: the l* call on
 * /proc/self/fd/<dir>/<base> resolves BASE inside the fd opened beneath root). */
static int apply_xattrs(int dir, const char *base, const char *path, const char *hex, struct velo_err *err) {
  cleanup_free uint8_t *block = NULL;
  size_t len = 0;
  if (unhex(hex, &block, &len, err) < 0) return velo_fail(err, 0, "%s: malformed xattr field", path);
  char p[4096];
  if ((size_t)snprintf(p, sizeof p, "/proc/self/fd/%d/%s", dir, base) >= sizeof p) return velo_fail(err, ENAMETOOLONG, "%s", path);
  struct velo_xattr_it it = {0};
  struct velo_xattr x;
  if (velo_xattrs_begin(&it, block, len, err) < 0) return -1;
  int r;
  while ((r = velo_xattrs_next(&it, &x, err)) > 0)
    if (lsetxattr(p, x.name, x.value, x.value_len, 0) < 0) return VELO_FAIL_ERRNO(err, "%s: set xattr %s", path, x.name);
  if (r < 0) {
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    return velo_fail(err, 0, "%s: %s", path, why);
  }
  return 0;
}

/* Remove every attribute of the path that the block (hex) does not name, but security.selinux (flags bit 1). */
static int drop_other_xattrs(int dir, const char *base, const char *path, const char *hex, struct velo_err *err) {
  cleanup_free uint8_t *block = NULL;
  size_t len = 0;
  if (hex[0] && unhex(hex, &block, &len, err) < 0) return velo_fail(err, 0, "%s: malformed xattr field", path);
  char p[4096];
  if ((size_t)snprintf(p, sizeof p, "/proc/self/fd/%d/%s", dir, base) >= sizeof p) return velo_fail(err, ENAMETOOLONG, "%s", path);
  ssize_t n = llistxattr(p, NULL, 0);
  if (n < 0 && errno == ENOTSUP) return 0;
  if (n < 0) return VELO_FAIL_ERRNO(err, "%s: list xattrs", path);
  if (n == 0) return 0;
  cleanup_free char *names = malloc((size_t)n);
  if (!names) return velo_fail(err, ENOMEM, "%s: list xattrs", path);
  n = llistxattr(p, names, (size_t)n);
  if (n < 0) return VELO_FAIL_ERRNO(err, "%s: list xattrs", path);
  for (char *name = names; name < names + n; name += strlen(name) + 1) {
    if (!strcmp(name, "security.selinux")) continue;
    int named = 0;
    if (len) {
      struct velo_xattr_it it = {0};
      struct velo_xattr x;
      int r;
      if (velo_xattrs_begin(&it, block, len, err) < 0) return -1;
      while (!named && (r = velo_xattrs_next(&it, &x, err)) > 0) named = !strcmp(x.name, name);
      if (r < 0) return -1;
    }
    if (!named && lremovexattr(p, name) < 0 && errno != ENODATA) return VELO_FAIL_ERRNO(err, "%s: remove xattr %s", path, name);
  }
  return 0;
}

int velo_open_beneath(int root, const char *path, int flags, struct velo_err *err) {
  struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC, .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof how);
  if (fd < 0) return VELO_FAIL_ERRNO(err, "%s: open beneath root", path);
  return fd;
}

/* Split "a/b/c" into the parent dir fd (opened beneath root) and the last component. */
int velo_open_parent(int root, char *path, const char **base, struct velo_err *err) {
  char *slash = strrchr(path, '/');
  if (!slash) {
    *base = path;
    return velo_open_beneath(root, ".", O_PATH | O_DIRECTORY, err);
  }
  *slash = 0;
  int fd = velo_open_beneath(root, path, O_PATH | O_DIRECTORY, err);
  *slash = '/';
  *base = slash + 1;
  return fd;
}

int velo_meta_apply(int root, struct velo_meta *r, int do_chown, struct velo_err *err) {
  const char *base = ".";
  int is_root = strcmp(r->path, ".") == 0;
  cleanup_fd int dir = is_root ? velo_open_beneath(root, ".", O_PATH | O_DIRECTORY, err) : velo_open_parent(root, r->path, &base, err);
  if (dir < 0) return -1;
  if (!is_root && (strcmp(base, "..") == 0 || strcmp(base, ".") == 0 || base[0] == 0)) return velo_fail(err, 0, "%s: invalid path", r->path);

  switch (r->type) {
  case 'p':
  case 'c':
  case 'b':
  case 'w': {
    mode_t fmt = r->type == 'p' ? S_IFIFO : r->type == 'b' ? S_IFBLK : S_IFCHR;
    dev_t dev = r->type == 'w' ? makedev(0, 0) : r->rdev;
    if (mknodat(dir, base, fmt | (r->mode & 07777), dev) < 0 && errno != EEXIST) {
      /* Not root (a rootless store's farm): a device node cannot be made (whiteouts and fifos can). An empty file
       * keeps the path; the image in the store still says what it is (a checkout by root makes the node). */
      bool placeholder = errno == EPERM && geteuid() != 0 && r->type != 'p' && r->type != 'w';
      int fd = placeholder ? openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0) : -1;
      if (fd < 0) return VELO_FAIL_ERRNO(err, "%s: mknod", r->path);
      close(fd);
      r->type = 'f';
    }
    break;
  }
  case 'f':
  case 'd':
  case 'l':
    break;
  default:
    return velo_fail(err, 0, "%s: unknown type '%c'", r->path, r->type);
  }

  struct stat st;
  if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(err, "%s: stat", r->path);
  int is_link = S_ISLNK(st.st_mode);
  if (is_link != (r->type == 'l')) return velo_fail(err, 0, "%s: is %sa symlink, record says type %c", r->path, is_link ? "" : "not ", r->type);
  if (r->flags & 4 && !S_ISDIR(st.st_mode) && st.st_nlink > 1)
    return velo_fail(err, 0, "%s: linked from elsewhere too (%ju links): its owner, mode and times are left as they are", r->path, (uintmax_t)st.st_nlink);

  if (do_chown && fchownat(dir, base, r->uid, r->gid, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(err, "%s: chown %u:%u", r->path, r->uid, r->gid);
  /* never through a symlink: one renamed over the path since the stat above would carry the mode elsewhere (glibc does
   * this through an O_PATH fd; a symlink found there is refused, EOPNOTSUPP) */
  if (!is_link && fchmodat(dir, base, r->mode & 07777, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(err, "%s: chmod %o", r->path, r->mode);
  /* the whole set first: the opaque mark below is not in the block */
  if (r->flags & 2 && drop_other_xattrs(dir, base, r->path, r->xattrs_hex ? r->xattrs_hex : "", err) < 0) return -1;
  if (r->flags & 1) {
    cleanup_fd int fd = openat(dir, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return VELO_FAIL_ERRNO(err, "%s: open", r->path);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    /* overlayfs reads trusted.overlay.* when root mounts it, user.overlay.* with "userxattr" (an overlay mounted in a
     * user namespace: velo's rootless tenants): a farm is built by its store's owner, for that owner's overlays */
    const char *name = geteuid() == 0 ? "trusted.overlay.opaque" : "user.overlay.opaque";
    if (setxattr(proc, name, "y", 1, 0) < 0) return VELO_FAIL_ERRNO(err, "%s: set %s", r->path, name);
  }
  if (r->xattrs_hex && r->xattrs_hex[0] && apply_xattrs(dir, base, r->path, r->xattrs_hex, err) < 0) return -1;
  struct timespec ts[2] = {r->mtime, r->mtime};
  if (utimensat(dir, base, ts, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(err, "%s: set times", r->path);
  return 0;
}

