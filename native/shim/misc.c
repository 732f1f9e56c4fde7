/* The rest: truncate, xattrs (hide velo's own), fd-level metadata calls on redirected fds (they must reach
 * the placeholder, never the shared CAS object), readlink of /proc/self/fd/N. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "shim.h"

/* truncate(2) of a placeholder: to 0 drops the mark (nothing to copy); otherwise break it first. */
VELO_EXPORT int truncate(const char *path, off_t len) {
  REAL_READY();
  char mb[PATH_MAX];
  const char *p = MAP(AT_FDCWD, path, mb);
  struct stat st;
  struct velo_ph ph;
  char real[PATH_MAX];
  if (R.fstatat(AT_FDCWD, p, &st, 0) == 0 && velo_ph_maybe(&st) && velo_ph_get_path(p, 1, &ph) && R.realpath(p, real)) {
    if (len == 0) {
      if (R.truncate(real, 0) < 0) return -1;
      if (R.removexattr(real, VELO_XATTR_OBJ) < 0 && errno != ENODATA) return -1;
      return 0;
    }
    if (velo_ph_materialize(real) < 0) return -1;
  }
  return R.truncate(p, len);
}
VELO_EXPORT int truncate64(const char *path, off_t len) __attribute__((alias("truncate")));

/* ---- xattrs: velo's marks are invisible ---- */
static int is_ours(const char *name) { return name && (!strcmp(name, VELO_XATTR_OBJ) || !strcmp(name, VELO_XATTR_STAMP)); }

static ssize_t filter_list(ssize_t n, char *list, size_t size) {
  if (n <= 0 || !list || size == 0) {
    /* size query: the caller will come back with a buffer; over-reporting is allowed */
    return n;
  }
  char *w = list;
  for (char *r = list; r < list + n;) {
    size_t l = strlen(r) + 1;
    if (!is_ours(r)) {
      memmove(w, r, l);
      w += l;
    }
    r += l;
  }
  return w - list;
}

VELO_EXPORT ssize_t getxattr(const char *p, const char *name, void *v, size_t s) {
  REAL_READY();
  char mb[PATH_MAX];
  if (is_ours(name)) {
    errno = ENODATA;
    return -1;
  }
  return R.getxattr(MAP(AT_FDCWD, p, mb), name, v, s);
}
VELO_EXPORT ssize_t lgetxattr(const char *p, const char *name, void *v, size_t s) {
  REAL_READY();
  char mb[PATH_MAX];
  if (is_ours(name)) {
    errno = ENODATA;
    return -1;
  }
  return R.lgetxattr(MAP(AT_FDCWD, p, mb), name, v, s);
}
VELO_EXPORT ssize_t fgetxattr(int fd, const char *name, void *v, size_t s) {
  REAL_READY();
  if (is_ours(name)) {
    errno = ENODATA;
    return -1;
  }
  return R.fgetxattr(fd, name, v, s);
}
VELO_EXPORT ssize_t listxattr(const char *p, char *l, size_t s) {
  REAL_READY();
  char mb[PATH_MAX];
  return filter_list(R.listxattr(MAP(AT_FDCWD, p, mb), l, s), l, s);
}
VELO_EXPORT ssize_t llistxattr(const char *p, char *l, size_t s) {
  REAL_READY();
  char mb[PATH_MAX];
  return filter_list(R.llistxattr(MAP(AT_FDCWD, p, mb), l, s), l, s);
}
VELO_EXPORT ssize_t flistxattr(int fd, char *l, size_t s) {
  REAL_READY();
  return filter_list(R.flistxattr(fd, l, s), l, s);
}

/* ---- metadata calls on a redirected fd go to the placeholder's path ---- */
static int redirected(int fd, struct velo_fdent *e) {
  if (!velo_fd_get(fd, e)) return 0;
  struct stat st;
  if (R.fstatat(fd, "", &st, AT_EMPTY_PATH) < 0 || st.st_dev != e->odev || st.st_ino != e->oino) {
    velo_fd_clear(fd);
    return 0;
  }
  return 1;
}
VELO_EXPORT int fchmod(int fd, mode_t m) {
  REAL_READY();
  struct velo_fdent e;
  if (redirected(fd, &e)) {
    int r = R.chmod(e.path, m);
    if (r == 0) velo_fd_refresh(fd);
    return r;
  }
  return R.fchmod(fd, m);
}
VELO_EXPORT int fchown(int fd, uid_t u, gid_t g) {
  REAL_READY();
  struct velo_fdent e;
  if (redirected(fd, &e)) {
    int r = R.fchownat(AT_FDCWD, e.path, u, g, 0);
    if (r == 0) velo_fd_refresh(fd);
    return r;
  }
  return R.fchown(fd, u, g);
}
VELO_EXPORT int futimens(int fd, const struct timespec ts[2]) {
  REAL_READY();
  struct velo_fdent e;
  if (redirected(fd, &e)) {
    int r = R.utimensat(AT_FDCWD, e.path, ts, 0);
    if (r == 0) velo_fd_refresh(fd);
    return r;
  }
  return R.futimens(fd, ts);
}
VELO_EXPORT int fsetxattr(int fd, const char *name, const void *v, size_t s, int fl) {
  REAL_READY();
  struct velo_fdent e;
  if (is_ours(name)) {
    errno = EPERM;
    return -1;
  }
  if (redirected(fd, &e)) return setxattr(e.path, name, v, s, fl);
  return R.fsetxattr(fd, name, v, s, fl);
}
VELO_EXPORT int fremovexattr(int fd, const char *name) {
  REAL_READY();
  struct velo_fdent e;
  if (is_ours(name)) {
    errno = ENODATA;
    return -1;
  }
  if (redirected(fd, &e)) return R.removexattr(e.path, name);
  return R.fremovexattr(fd, name);
}

/* readlink("/proc/self/fd/N") of a redirected fd names the projected file, not the store object; in
 * phantom mode, any answer inside the private skeleton is mapped back under the projection root. */
static ssize_t readlink_common(int dirfd, const char *path, char *buf, size_t size) {
  REAL_READY();
  int fd = -1;
  if (path && (sscanf(path, "/proc/self/fd/%d", &fd) == 1 || sscanf(path, "/dev/fd/%d", &fd) == 1)) {
    struct velo_fdent e;
    if (fd >= 0 && redirected(fd, &e)) {
      char tmp[PATH_MAX];
      snprintf(tmp, sizeof tmp, "%s", e.path);
      if (S.phantom) velo_unmap(tmp, sizeof tmp);
      size_t n = strlen(tmp);
      if (n > size) n = size;
      memcpy(buf, tmp, n);
      return (ssize_t)n;
    }
  }
  char mb[PATH_MAX];
  const char *p = MAP(dirfd, path, mb);
  ssize_t n = R.readlinkat(dirfd, p, buf, size);
  if (n > 0 && S.phantom && path && !strncmp(path, "/proc/", 6)) {
    char tmp[PATH_MAX];
    if ((size_t)n < sizeof tmp) {
      memcpy(tmp, buf, (size_t)n);
      tmp[n] = 0;
      velo_unmap(tmp, sizeof tmp);
      size_t l = strlen(tmp);
      if (l > size) l = size;
      memcpy(buf, tmp, l);
      n = (ssize_t)l;
    }
  }
  return n;
}
VELO_EXPORT ssize_t readlink(const char *p, char *b, size_t s) { return readlink_common(AT_FDCWD, p, b, s); }
VELO_EXPORT ssize_t readlinkat(int d, const char *p, char *b, size_t s) { return readlink_common(d, p, b, s); }
