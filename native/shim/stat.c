/* The stat family. The kernel's answer for a placeholder is already right in everything but st_blocks
 * (a placeholder is sparse): patch that from the xattr. For an fd redirected to a CAS object, answer with
 * the placeholder's identity (its own inode, mode, link count), not the shared object's. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <stdint.h>
#include <sys/sysmacros.h>

#include "shim.h"

/* A redirected fd: the fstat result is the object's; give back the placeholder's. */
static int fd_fixup(int fd, struct stat *st) {
  struct velo_fdent e;
  if (!velo_fd_get(fd, &e)) return 0;
  if (e.odev != st->st_dev || e.oino != st->st_ino) {
    velo_fd_clear(fd); /* stale: the fd was closed behind our back and reused */
    return 0;
  }
  /* the placeholder's stat from open time (no system call: node fstats every file it reads), kept current
   * by fchmod/fchown/futimens on this fd */
  *st = e.ph;
  return 1;
}

void velo_stat_fixup(int dirfd, const char *path, int flags, struct stat *st) {
  int e = errno;
  if ((flags & AT_EMPTY_PATH) && path && !*path) {
    if (!fd_fixup(dirfd, st) && velo_ph_maybe(st)) {
      struct velo_ph ph;
      if (velo_ph_get_fd(dirfd, &ph)) st->st_blocks = ph.blocks;
    }
  } else if (velo_ph_maybe(st)) {
    struct velo_ph ph;
    int follow = !(flags & AT_SYMLINK_NOFOLLOW), ok;
    if (path[0] == '/' || dirfd == AT_FDCWD) {
      ok = velo_ph_get_path(path, follow, &ph);
    } else {
      char p[PATH_MAX];
      ok = snprintf(p, sizeof p, "/proc/self/fd/%d/%s", dirfd, path) < (int)sizeof p && velo_ph_get_path(p, follow, &ph);
    }
    if (ok) st->st_blocks = ph.blocks;
  }
  errno = e;
}

static int do_fstatat(int dirfd, const char *path, struct stat *st, int flags) {
  REAL_READY();
  char mb[PATH_MAX];
  const char *p = path && *path ? MAP(dirfd, path, mb) : path;
  int r = R.fstatat(dirfd, p, st, flags);
  if (r == 0) velo_stat_fixup(dirfd, p, flags, st);
  return r;
}

/* On x86-64, struct stat and struct stat64 are the same, and the pre-2.33 __xstat family's version 1
 * (_STAT_VER_KERNEL/_STAT_VER_LINUX) uses that same layout. */
VELO_EXPORT int stat(const char *p, struct stat *st) { return do_fstatat(AT_FDCWD, p, st, 0); }
VELO_EXPORT int stat64(const char *p, struct stat64 *st) { return do_fstatat(AT_FDCWD, p, (struct stat *)st, 0); }
VELO_EXPORT int lstat(const char *p, struct stat *st) { return do_fstatat(AT_FDCWD, p, st, AT_SYMLINK_NOFOLLOW); }
VELO_EXPORT int lstat64(const char *p, struct stat64 *st) { return do_fstatat(AT_FDCWD, p, (struct stat *)st, AT_SYMLINK_NOFOLLOW); }
VELO_EXPORT int fstat(int fd, struct stat *st) { return do_fstatat(fd, "", st, AT_EMPTY_PATH); }
VELO_EXPORT int fstat64(int fd, struct stat64 *st) { return do_fstatat(fd, "", (struct stat *)st, AT_EMPTY_PATH); }
VELO_EXPORT int fstatat(int d, const char *p, struct stat *st, int fl) { return do_fstatat(d, p, st, fl); }
VELO_EXPORT int fstatat64(int d, const char *p, struct stat64 *st, int fl) { return do_fstatat(d, p, (struct stat *)st, fl); }
VELO_EXPORT int __xstat(int v, const char *p, struct stat *st) { (void)v; return do_fstatat(AT_FDCWD, p, st, 0); }
VELO_EXPORT int __xstat64(int v, const char *p, struct stat64 *st) { (void)v; return do_fstatat(AT_FDCWD, p, (struct stat *)st, 0); }
VELO_EXPORT int __lxstat(int v, const char *p, struct stat *st) { (void)v; return do_fstatat(AT_FDCWD, p, st, AT_SYMLINK_NOFOLLOW); }
VELO_EXPORT int __lxstat64(int v, const char *p, struct stat64 *st) { (void)v; return do_fstatat(AT_FDCWD, p, (struct stat *)st, AT_SYMLINK_NOFOLLOW); }
VELO_EXPORT int __fxstat(int v, int fd, struct stat *st) { (void)v; return do_fstatat(fd, "", st, AT_EMPTY_PATH); }
VELO_EXPORT int __fxstat64(int v, int fd, struct stat64 *st) { (void)v; return do_fstatat(fd, "", (struct stat *)st, AT_EMPTY_PATH); }
VELO_EXPORT int __fxstatat(int v, int d, const char *p, struct stat *st, int fl) { (void)v; return do_fstatat(d, p, st, fl); }
VELO_EXPORT int __fxstatat64(int v, int d, const char *p, struct stat64 *st, int fl) { (void)v; return do_fstatat(d, p, (struct stat *)st, fl); }

/* statx: same rules. The kernel's statx is called directly (glibc's statx and syscall(SYS_statx), as
 * libuv does, both end here). */
int velo_statx_impl(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx) {
  REAL_READY();
  char mb[PATH_MAX];
  const char *p = path && *path ? MAP(dirfd, path, mb) : path;
  long r = R.syscall(SYS_statx, dirfd, p, flags, mask, stx);
  if (r != 0) return (int)r;
  if ((stx->stx_mode & S_IFMT) != S_IFREG) return 0;
  struct stat st = {0};
  st.st_mode = stx->stx_mode;
  st.st_size = (off_t)stx->stx_size;
  st.st_blocks = (blkcnt_t)stx->stx_blocks;
  st.st_dev = makedev(stx->stx_dev_major, stx->stx_dev_minor);
  st.st_ino = stx->stx_ino;
  int from_fd = (flags & AT_EMPTY_PATH) && p && !*p;
  struct velo_fdent e;
  if (from_fd && velo_fd_get(dirfd, &e)) {
    if (fd_fixup(dirfd, &st)) {
      stx->stx_mode = (uint16_t)st.st_mode;
      stx->stx_ino = st.st_ino;
      stx->stx_dev_major = major(st.st_dev);
      stx->stx_dev_minor = minor(st.st_dev);
      stx->stx_nlink = (uint32_t)st.st_nlink;
      stx->stx_uid = st.st_uid;
      stx->stx_gid = st.st_gid;
      stx->stx_size = (uint64_t)st.st_size;
      stx->stx_blocks = (uint64_t)st.st_blocks;
      stx->stx_atime.tv_sec = st.st_atim.tv_sec, stx->stx_atime.tv_nsec = (uint32_t)st.st_atim.tv_nsec;
      stx->stx_mtime.tv_sec = st.st_mtim.tv_sec, stx->stx_mtime.tv_nsec = (uint32_t)st.st_mtim.tv_nsec;
      stx->stx_ctime.tv_sec = st.st_ctim.tv_sec, stx->stx_ctime.tv_nsec = (uint32_t)st.st_ctim.tv_nsec;
      stx->stx_mask &= ~(unsigned)STATX_BTIME; /* the placeholder's birth time is not known here */
    }
    return 0;
  }
  velo_stat_fixup(dirfd, p, flags, &st);
  stx->stx_blocks = (uint64_t)st.st_blocks;
  return 0;
}

VELO_EXPORT int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx) {
  int r = velo_statx_impl(dirfd, path, flags, mask, stx);
  if (r < 0) return -1; /* R.syscall already set errno */
  return r;
}

/* syscall(2): libuv stats with syscall(SYS_statx) and sets up io_uring with syscall(SYS_io_uring_setup).
 * statx goes through the shim; io_uring is refused (ENOSYS), so libuv falls back to its thread pool and
 * every file operation stays visible to the shim. Everything else passes through untouched. */
VELO_EXPORT long syscall(long n, ...) {
  REAL_READY();
  va_list ap;
  va_start(ap, n);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long), a4 = va_arg(ap, long), a5 = va_arg(ap, long),
       a6 = va_arg(ap, long);
  va_end(ap);
  if (n == SYS_statx) return velo_statx_impl((int)a1, (const char *)a2, (int)a3, (unsigned)a4, (struct statx *)a5);
  if (n == SYS_io_uring_setup) {
    errno = ENOSYS;
    return -1;
  }
  return R.syscall(n, a1, a2, a3, a4, a5, a6);
}
