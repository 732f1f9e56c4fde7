/* Placeholders (see ph.h): recognising them and breaking them into private copies. */
#include "ph.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "manifest.h"
#include "real.h"

char velo_cas[PATH_MAX];

static void put_le(unsigned char *p, unsigned long long v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static unsigned long long get_le(const unsigned char *p, int n) {
  unsigned long long v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

void velo_ph_encode(unsigned char *b, const unsigned char hash[32], unsigned long long size, unsigned mode, unsigned uid,
                    unsigned gid, unsigned long long blocks) {
  b[0] = 'V';
  memcpy(b + 1, hash, 32);
  put_le(b + 33, size, 8);
  put_le(b + 41, mode & 07777, 4);
  put_le(b + 45, uid, 4);
  put_le(b + 49, gid, 4);
  put_le(b + 53, blocks, 8);
}

int velo_ph_parse(const char *val, ssize_t n, struct velo_ph *ph) {
  const unsigned char *b = (const unsigned char *)val;
  if (n != VELO_PH_VALUE_LEN || b[0] != 'V') return 0;
  if (!velo_cas[0]) {
    const char *c = getenv("VELO_SHIM_CAS"), *h = getenv("VELO_HOME");
    if (c) snprintf(velo_cas, sizeof velo_cas, "%s", c);
    else if (h) snprintf(velo_cas, sizeof velo_cas, "%s/cas/blake3", h);
    else return 0;
  }
  /* the object's path comes from native/common (velo_object_path), the one definition of the store layout */
  struct velo_store st = {.cas_dir = velo_cas};
  struct velo_entry e = {0};
  memcpy(e.hash, b + 1, 32);
  e.size = get_le(b + 33, 8);
  e.mode = (uint32_t)get_le(b + 41, 4);
  e.uid = (uint32_t)get_le(b + 45, 4);
  e.gid = (uint32_t)get_le(b + 49, 4);
  ph->blocks = (long long)get_le(b + 53, 8);
  int r = velo_object_path(&st, &e, ph->obj, sizeof ph->obj);
  return r > 0 && r < (int)sizeof ph->obj;
}

int velo_ph_get_fd(int fd, struct velo_ph *ph) {
  REAL_READY();
  char val[VELO_PH_VALUE_LEN + 1];
  int e = errno;
  ssize_t n = R.fgetxattr(fd, VELO_XATTR_OBJ, val, sizeof val - 1);
  if (n < 0 && errno == EBADF) { /* O_PATH fds cannot fgetxattr; go through /proc */
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    n = R.getxattr(p, VELO_XATTR_OBJ, val, sizeof val - 1);
  }
  errno = e;
  return n > 0 ? velo_ph_parse(val, n, ph) : 0;
}

int velo_ph_get_path(const char *path, int follow, struct velo_ph *ph) {
  REAL_READY();
  char val[VELO_PH_VALUE_LEN + 1];
  int e = errno;
  ssize_t n = (follow ? R.getxattr : R.lgetxattr)(path, VELO_XATTR_OBJ, val, sizeof val - 1);
  errno = e;
  return n > 0 ? velo_ph_parse(val, n, ph) : 0;
}

int velo_fd_path(int fd, char *buf, size_t len) {
  REAL_READY();
  char p[64];
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
  ssize_t n = R.readlink(p, buf, len - 1);
  if (n < 0) return -1;
  buf[n] = 0;
  if (buf[0] != '/') {
    errno = ENOENT;
    return -1;
  }
  return 0;
}

static int copy_all(int in, int out, off_t size) {
  off_t done = 0;
  while (done < size) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)(size - done), 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) break;
    if (n < 0) return -1;
    if (n == 0) break;
    done += n;
  }
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) return 0;
    for (ssize_t o = 0; o < n;) {
      ssize_t w = write(out, buf + o, (size_t)(n - o));
      if (w < 0) {
        if (errno == EINTR) continue;
        return -1;
      }
      o += w;
    }
  }
}

static void unlock_close(int *fd) {
  if (*fd >= 0) {
    int e = errno;
    flock(*fd, LOCK_UN);
    R.close(*fd);
    errno = e;
  }
}
static void close_keep_errno(int *fd) {
  if (*fd >= 0) {
    int e = errno;
    R.close(*fd);
    errno = e;
  }
}

int velo_ph_materialize(const char *path) {
  REAL_READY();
  __attribute__((cleanup(unlock_close))) int pfd = R.openat(AT_FDCWD, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (pfd < 0) return -1;
  if (flock(pfd, LOCK_EX) < 0) return -1;
  struct stat pst, now;
  if (R.fstatat(pfd, "", &pst, AT_EMPTY_PATH) < 0) return -1;
  /* Someone else may have materialized it while we waited: then the path names another inode. */
  if (R.fstatat(AT_FDCWD, path, &now, AT_SYMLINK_NOFOLLOW) < 0) return -1;
  if (now.st_dev != pst.st_dev || now.st_ino != pst.st_ino) return 0;
  struct velo_ph ph;
  if (!velo_ph_maybe(&pst) || !velo_ph_get_fd(pfd, &ph)) return 0; /* not (or no longer) a placeholder */

  __attribute__((cleanup(close_keep_errno))) int ofd = R.openat(AT_FDCWD, ph.obj, O_RDONLY | O_CLOEXEC);
  if (ofd < 0) {
    errno = EIO; /* the object the placeholder names is gone: the store was moved or collected */
    return -1;
  }
  char tmp[PATH_MAX];
  const char *slash = strrchr(path, '/');
  int dl = slash ? (int)(slash - path + 1) : 0;
  if (snprintf(tmp, sizeof tmp, "%.*s.velo-tmp.%s.%d", dl, path, slash ? slash + 1 : path, (int)getpid()) >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int tfd = R.openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (tfd < 0) return -1;
  int ok = copy_all(ofd, tfd, pst.st_size) == 0;
  if (ok && geteuid() == 0) ok = R.fchown(tfd, pst.st_uid, pst.st_gid) == 0;
  if (ok) ok = R.fchmod(tfd, pst.st_mode & 07777) == 0;
  struct timespec ts[2] = {pst.st_atim, pst.st_mtim};
  if (ok) ok = R.futimens(tfd, ts) == 0;
  if (R.close(tfd) < 0) ok = 0;
  if (ok) ok = R.rename(tmp, path) == 0;
  if (!ok) {
    int e = errno;
    R.unlinkat(AT_FDCWD, tmp, 0);
    errno = e;
    return -1;
  }
  return 0;
}
