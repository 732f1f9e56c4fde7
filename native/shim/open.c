/* The open family. Every successful open of a regular file is checked once with fstat: a placeholder
 * (size > 0, no blocks, confirmed by its xattr) is swapped, on the same fd number, for its CAS object
 * opened read-only — or, for a write, first broken into a private copy. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "shim.h"

static void close_quiet(int fd) {
  int e = errno;
  R.close(fd);
  errno = e;
}

int velo_open_fixup(int fd, int flags, const char *abs_hint) {
  if (fd < 0 || (flags & (O_PATH | O_DIRECTORY))) return fd;
  velo_fd_clear(fd);
  struct stat st;
  int e = errno;
  if (R.fstatat(fd, "", &st, AT_EMPTY_PATH) < 0 || !S_ISREG(st.st_mode)) {
    errno = e;
    return fd;
  }
  int acc = flags & O_ACCMODE;
  struct velo_ph ph;
  if (acc != O_RDONLY && (flags & O_TRUNC)) {
    /* truncate-for-write: nothing to copy; the file is now simply a real, empty file */
    if (st.st_size == 0 && R.fremovexattr(fd, VELO_XATTR_OBJ) < 0 && errno != ENODATA && errno != ENOTSUP) {
      /* cannot drop the mark: fail rather than leave a file that would redirect to stale content */
      close_quiet(fd);
      return -1;
    }
    errno = e;
    return fd;
  }
  if (!velo_ph_maybe(&st) || !velo_ph_get_fd(fd, &ph)) {
    errno = e;
    return fd;
  }
  struct velo_fdent ent;
  /* The placeholder's path (fd table, materialization). A read-only open given an absolute path keeps that
   * path (it names the same inode; saves a /proc readlink per open). A write resolves the real final name,
   * since the private copy must be renamed over the placeholder, not over a symlink to it. */
  size_t hl = abs_hint && acc == O_RDONLY && abs_hint[0] == '/' && strncmp(abs_hint, "/proc/", 6) ? strlen(abs_hint) : 0;
  if (hl && hl < sizeof ent.path) {
    memcpy(ent.path, abs_hint, hl + 1);
  } else if (velo_fd_path(fd, ent.path, sizeof ent.path) < 0) {
    close_quiet(fd);
    errno = EIO;
    return -1;
  }
  int nfd;
  if (acc == O_RDONLY) {
    nfd = R.openat(AT_FDCWD, ph.obj, O_RDONLY | O_CLOEXEC | (flags & (O_NONBLOCK | O_NOCTTY)));
    if (nfd < 0) {
      velo_warn("cannot open the store object behind %s (%s): %s", ent.path, ph.obj, strerror(errno));
      close_quiet(fd);
      errno = EIO;
      return -1;
    }
    struct stat ost;
    R.fstatat(nfd, "", &ost, AT_EMPTY_PATH);
    ent.odev = ost.st_dev;
    ent.oino = ost.st_ino;
    ent.ph = st;
    ent.ph.st_blocks = ph.blocks;
  } else {
    /* break-before-write: a private copy replaces the placeholder, then the program opens that */
    if (velo_ph_materialize(ent.path) < 0) {
      close_quiet(fd);
      return -1;
    }
    nfd = R.openat(AT_FDCWD, ent.path, (flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_CLOEXEC);
    if (nfd < 0) {
      close_quiet(fd);
      return -1;
    }
  }
  /* same fd number, so a FILE* or a caller that already holds the number keeps working */
  if (R.dup3(nfd, fd, flags & O_CLOEXEC) < 0) {
    close_quiet(nfd);
    close_quiet(fd);
    return -1;
  }
  R.close(nfd);
  if (acc == O_RDONLY) velo_fd_set(fd, &ent);
  errno = e;
  return fd;
}

static mode_t va_mode(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

#define OPEN_BODY(realfn, dirfd, path, flags, mode)          \
  REAL_READY();                                              \
  char mb_[PATH_MAX];                                        \
  const char *p_ = MAP(dirfd, path, mb_);                    \
  return velo_open_fixup(realfn, flags, (dirfd) == AT_FDCWD ? p_ : NULL)

VELO_EXPORT int open(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  OPEN_BODY(R.openat(AT_FDCWD, p_, flags, m), AT_FDCWD, path, flags, m);
}
VELO_EXPORT int open64(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  OPEN_BODY(R.openat(AT_FDCWD, p_, flags | O_LARGEFILE, m), AT_FDCWD, path, flags, m);
}
VELO_EXPORT int openat(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  OPEN_BODY(R.openat(dirfd, p_, flags, m), dirfd, path, flags, m);
}
VELO_EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  OPEN_BODY(R.openat(dirfd, p_, flags | O_LARGEFILE, m), dirfd, path, flags, m);
}
VELO_EXPORT int __open_2(const char *path, int flags) { OPEN_BODY(R.openat(AT_FDCWD, p_, flags, 0), AT_FDCWD, path, flags, 0); }
VELO_EXPORT int __open64_2(const char *path, int flags) { OPEN_BODY(R.openat(AT_FDCWD, p_, flags | O_LARGEFILE, 0), AT_FDCWD, path, flags, 0); }
VELO_EXPORT int __openat_2(int dirfd, const char *path, int flags) { OPEN_BODY(R.openat(dirfd, p_, flags, 0), dirfd, path, flags, 0); }
VELO_EXPORT int __openat64_2(int dirfd, const char *path, int flags) { OPEN_BODY(R.openat(dirfd, p_, flags | O_LARGEFILE, 0), dirfd, path, flags, 0); }
VELO_EXPORT int creat(const char *path, mode_t m) {
  OPEN_BODY(R.openat(AT_FDCWD, p_, O_CREAT | O_WRONLY | O_TRUNC, m), AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, m);
}
VELO_EXPORT int creat64(const char *path, mode_t m) {
  OPEN_BODY(R.openat(AT_FDCWD, p_, O_CREAT | O_WRONLY | O_TRUNC | O_LARGEFILE, m), AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, m);
}

/* fopen's mode string → open flags (glibc's rules: first char r/w/a, '+' anywhere, 'e' = O_CLOEXEC). */
static int fmode_flags(const char *mode) {
  int f;
  switch (mode[0]) {
  case 'r': f = O_RDONLY; break;
  case 'w': f = O_WRONLY | O_CREAT | O_TRUNC; break;
  case 'a': f = O_WRONLY | O_CREAT | O_APPEND; break;
  default: return -1;
  }
  for (const char *c = mode + 1; *c && *c != ','; c++) {
    if (*c == '+') f = (f & ~O_ACCMODE) | O_RDWR;
    if (*c == 'e') f |= O_CLOEXEC;
  }
  return f;
}

/* fopen: let libc open it, then fix the fd under the FILE (same number, so the FILE never notices). */
static FILE *fopen_fix(FILE *f, const char *mode) {
  if (!f) return f;
  int flags = fmode_flags(mode);
  if (flags < 0) return f;
  int fd = fileno(f);
  int e = errno;
  struct stat st;
  int acc = flags & O_ACCMODE;
  /* the common case (not a placeholder, nothing to drop) costs one fstat and nothing else */
  if (R.fstatat(fd, "", &st, AT_EMPTY_PATH) < 0 || !S_ISREG(st.st_mode) || !((acc != O_RDONLY && (flags & O_TRUNC)) || velo_ph_maybe(&st))) {
    errno = e;
    return f;
  }
  /* velo_open_fixup closes fd on failure; keep the FILE consistent by handing it a dup */
  int keep = R.fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (keep < 0) return f;
  int r = velo_open_fixup(keep, flags, NULL);
  if (r < 0) {
    e = errno;
    fclose(f);
    errno = e;
    return NULL;
  }
  if (R.dup3(r, fd, flags & O_CLOEXEC) < 0) {
    R.close(r);
    return f;
  }
  velo_fd_dup(r, fd);
  velo_fd_clear(r);
  R.close(r);
  errno = e;
  return f;
}

VELO_EXPORT FILE *fopen(const char *path, const char *mode) {
  REAL_READY();
  char mb[PATH_MAX];
  return fopen_fix(R.fopen(MAP(AT_FDCWD, path, mb), mode), mode);
}
VELO_EXPORT FILE *fopen64(const char *path, const char *mode) {
  REAL_READY();
  char mb[PATH_MAX];
  return fopen_fix(R.fopen64(MAP(AT_FDCWD, path, mb), mode), mode);
}
VELO_EXPORT FILE *freopen(const char *path, const char *mode, FILE *s) {
  REAL_READY();
  char mb[PATH_MAX];
  return fopen_fix(R.freopen(path ? MAP(AT_FDCWD, path, mb) : NULL, mode, s), mode);
}
VELO_EXPORT FILE *freopen64(const char *path, const char *mode, FILE *s) {
  REAL_READY();
  char mb[PATH_MAX];
  return fopen_fix(R.freopen64(path ? MAP(AT_FDCWD, path, mb) : NULL, mode, s), mode);
}

/* ---- fd lifetime: keep the table in step ---- */
VELO_EXPORT int close(int fd) {
  REAL_READY();
  velo_fd_clear(fd);
  return R.close(fd);
}
VELO_EXPORT int dup(int fd) {
  REAL_READY();
  int r = R.dup(fd);
  if (r >= 0) velo_fd_dup(fd, r);
  return r;
}
VELO_EXPORT int dup2(int fd, int to) {
  REAL_READY();
  int r = R.dup2(fd, to);
  if (r >= 0) velo_fd_dup(fd, r);
  return r;
}
VELO_EXPORT int dup3(int fd, int to, int flags) {
  REAL_READY();
  int r = R.dup3(fd, to, flags);
  if (r >= 0) velo_fd_dup(fd, r);
  return r;
}
VELO_EXPORT int fcntl(int fd, int cmd, ...) {
  REAL_READY();
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  int r = R.fcntl(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) velo_fd_dup(fd, r);
  return r;
}
VELO_EXPORT int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));
