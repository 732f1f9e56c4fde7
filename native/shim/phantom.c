/* Phantom mode: nothing exists at the projection root on disk. The projection lives in a private
 * skeleton under the user's cache (same placeholders as solid mode, so reads, stats, readdir via
 * getdents64 on a real fd, and break-before-write all work the same); every path the program names is
 * mapped lexically: ROOT/x → SKEL/x. Answers that reveal real paths (getcwd, realpath, readlink of
 * /proc/self/{cwd,fd/N}) are mapped back. In solid mode every wrapper here is a plain pass-through. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

#include "shim.h"

static char vcwd[PATH_MAX]; /* the program's view of its cwd (under ROOT when really in SKEL) */
static int vcwd_ok;

static int under(const char *p, const char *pre, size_t n) { return !strncmp(p, pre, n) && (p[n] == 0 || p[n] == '/'); }

void velo_unmap(char *p, size_t len) {
  if (!S.phantom || !under(p, S.skel, S.skel_len)) return;
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s%s", S.root, p + S.skel_len) >= (int)sizeof tmp || strlen(tmp) >= len) return;
  strcpy(p, tmp);
}

void velo_cwd_changed(void) {
  char b[PATH_MAX];
  if (R.getcwd && R.getcwd(b, sizeof b)) {
    velo_unmap(b, sizeof b);
    snprintf(vcwd, sizeof vcwd, "%s", b);
    vcwd_ok = 1;
  } else {
    vcwd_ok = 0;
  }
}

/* Lexical normalisation of an absolute path: "//", "." and ".." removed. */
static int normalize(const char *in, char *out, size_t len) {
  size_t o = 0;
  out[o++] = '/';
  for (const char *p = in; *p;) {
    while (*p == '/') p++;
    if (!*p) break;
    size_t l = strcspn(p, "/");
    if (l == 1 && p[0] == '.') {
    } else if (l == 2 && p[0] == '.' && p[1] == '.') {
      if (o > 1) {
        o--;
        while (o > 1 && out[o - 1] != '/') o--;
      }
    } else {
      if (o > 1) {
        if (o + 1 >= len) return -1;
        if (out[o - 1] != '/') out[o++] = '/';
      }
      if (o + l >= len) return -1;
      memcpy(out + o, p, l);
      o += l;
    }
    p += l;
  }
  if (o > 1 && out[o - 1] == '/') o--;
  out[o] = 0;
  return 0;
}

const char *velo_map(int dirfd, const char *p, char *buf, size_t len) {
  if (!S.phantom || !p || !*p) return p;
  char base[PATH_MAX], joined[PATH_MAX * 2], norm[PATH_MAX];
  int relative = p[0] != '/';
  int base_in_root = 0;
  if (!relative) {
    /* fast path: an absolute path that never mentions ROOT and has no ".." is left alone */
    if (strncmp(p, S.root, S.root_len) && !strstr(p, "/..")) return p;
    snprintf(joined, sizeof joined, "%s", p);
  } else {
    if (dirfd == AT_FDCWD) {
      if (!vcwd_ok) return p;
      snprintf(base, sizeof base, "%s", vcwd);
    } else {
      char lp[64];
      snprintf(lp, sizeof lp, "/proc/self/fd/%d", dirfd);
      ssize_t n = R.readlink(lp, base, sizeof base - 1);
      if (n <= 0) return p;
      base[n] = 0;
      velo_unmap(base, sizeof base);
    }
    base_in_root = under(base, S.root, S.root_len);
    /* fast path: inside the projection without "..", the kernel resolves it right in the skeleton */
    if (base_in_root && strncmp(p, "..", 2) && !strstr(p, "/..")) return p;
    if (snprintf(joined, sizeof joined, "%s/%s", base, p) >= (int)sizeof joined) return p;
  }
  if (normalize(joined, norm, sizeof norm) < 0) return p;
  size_t plen = strlen(p);
  int trailing = plen > 1 && p[plen - 1] == '/';
  if (under(norm, S.root, S.root_len)) {
    if (snprintf(buf, len, "%s%s%s", S.skel, norm + S.root_len, trailing ? "/" : "") >= (int)len) return p;
    return buf;
  }
  if (relative && !base_in_root) return p; /* outside, relative to an outside dir: untouched */
  if (snprintf(buf, len, "%s%s", norm, trailing && norm[1] ? "/" : "") >= (int)len) return p;
  return buf;
}

#define MAPPED(d, p) char mb_##p[PATH_MAX]; const char *m_##p = MAP(d, p, mb_##p)

VELO_EXPORT DIR *opendir(const char *p) {
  REAL_READY();
  MAPPED(AT_FDCWD, p);
  DIR *d = R.opendir(m_p);
  if (d && S.phantom) velo_phantom_track_dir(d);
  return d;
}
VELO_EXPORT int scandir(const char *p, struct dirent ***nl, int (*f)(const struct dirent *), int (*c)(const struct dirent **, const struct dirent **)) {
  REAL_READY();
  MAPPED(AT_FDCWD, p);
  int n = R.scandir(m_p, nl, f, c);
  return S.phantom && n >= 0 ? velo_phantom_scandir_fix(m_p, nl, n, f, c) : n;
}
VELO_EXPORT int scandir64(const char *p, struct dirent64 ***nl, int (*f)(const struct dirent64 *), int (*c)(const struct dirent64 **, const struct dirent64 **)) {
  REAL_READY();
  MAPPED(AT_FDCWD, p);
  int n = R.scandir64(m_p, nl, f, c);
  /* on x86-64 struct dirent64 is struct dirent */
  return S.phantom && n >= 0 ? velo_phantom_scandir_fix(m_p, (struct dirent ***)nl, n, (int (*)(const struct dirent *))f,
                                                        (int (*)(const struct dirent **, const struct dirent **))c)
                             : n;
}
VELO_EXPORT int chdir(const char *p) {
  REAL_READY();
  MAPPED(AT_FDCWD, p);
  int r = R.chdir(m_p);
  if (r == 0 && S.phantom) velo_cwd_changed();
  return r;
}
VELO_EXPORT int fchdir(int fd) {
  REAL_READY();
  int r = R.fchdir(fd);
  if (r == 0 && S.phantom) velo_cwd_changed();
  return r;
}
VELO_EXPORT char *getcwd(char *buf, size_t size) {
  REAL_READY();
  if (!S.phantom) return R.getcwd(buf, size);
  char tmp[PATH_MAX];
  if (!R.getcwd(tmp, sizeof tmp)) return NULL;
  velo_unmap(tmp, sizeof tmp);
  size_t n = strlen(tmp) + 1;
  if (!buf) {
    buf = malloc(size > n ? size : n);
    if (!buf) return NULL;
  } else if (size < n) {
    errno = ERANGE;
    return NULL;
  }
  memcpy(buf, tmp, n);
  return buf;
}
VELO_EXPORT char *realpath(const char *p, char *resolved) {
  REAL_READY();
  if (!S.phantom) return R.realpath(p, resolved);
  MAPPED(AT_FDCWD, p);
  char tmp[PATH_MAX];
  if (!R.realpath(m_p, tmp)) return NULL;
  velo_unmap(tmp, sizeof tmp);
  if (!resolved) return strdup(tmp);
  snprintf(resolved, PATH_MAX, "%s", tmp);
  return resolved;
}
VELO_EXPORT char *__realpath_chk(const char *p, char *resolved, size_t len) {
  (void)len;
  return realpath(p, resolved);
}
VELO_EXPORT char *canonicalize_file_name(const char *p) { return realpath(p, NULL); }
VELO_EXPORT ssize_t __readlink_chk(const char *p, char *b, size_t len, size_t blen) {
  (void)blen;
  return readlink(p, b, len);
}
VELO_EXPORT ssize_t __readlinkat_chk(int d, const char *p, char *b, size_t len, size_t blen) {
  (void)blen;
  return readlinkat(d, p, b, len);
}
VELO_EXPORT char *__getcwd_chk(char *buf, size_t size, size_t blen) {
  (void)blen;
  return getcwd(buf, size);
}

VELO_EXPORT int access(const char *p, int m) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.faccessat(AT_FDCWD, m_p, m, 0); }
VELO_EXPORT int euidaccess(const char *p, int m) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.faccessat(AT_FDCWD, m_p, m, AT_EACCESS); }
VELO_EXPORT int eaccess(const char *p, int m) { return euidaccess(p, m); }
VELO_EXPORT int faccessat(int d, const char *p, int m, int fl) { REAL_READY(); MAPPED(d, p); return R.faccessat(d, m_p, m, fl); }
VELO_EXPORT int mkdir(const char *p, mode_t m) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.mkdirat(AT_FDCWD, m_p, m); }
VELO_EXPORT int mkdirat(int d, const char *p, mode_t m) { REAL_READY(); MAPPED(d, p); return R.mkdirat(d, m_p, m); }
VELO_EXPORT int rmdir(const char *p) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.unlinkat(AT_FDCWD, m_p, AT_REMOVEDIR); }
VELO_EXPORT int unlink(const char *p) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.unlinkat(AT_FDCWD, m_p, 0); }
VELO_EXPORT int unlinkat(int d, const char *p, int fl) { REAL_READY(); MAPPED(d, p); return R.unlinkat(d, m_p, fl); }
VELO_EXPORT int rename(const char *a, const char *b) { REAL_READY(); MAPPED(AT_FDCWD, a); MAPPED(AT_FDCWD, b); return R.renameat(AT_FDCWD, m_a, AT_FDCWD, m_b); }
VELO_EXPORT int renameat(int da, const char *a, int db, const char *b) { REAL_READY(); MAPPED(da, a); MAPPED(db, b); return R.renameat(da, m_a, db, m_b); }
VELO_EXPORT int renameat2(int da, const char *a, int db, const char *b, unsigned fl) {
  REAL_READY();
  MAPPED(da, a);
  MAPPED(db, b);
  return (int)R.syscall(SYS_renameat2, da, m_a, db, m_b, fl);
}
VELO_EXPORT int link(const char *a, const char *b) { REAL_READY(); MAPPED(AT_FDCWD, a); MAPPED(AT_FDCWD, b); return R.linkat(AT_FDCWD, m_a, AT_FDCWD, m_b, 0); }
VELO_EXPORT int linkat(int da, const char *a, int db, const char *b, int fl) { REAL_READY(); MAPPED(da, a); MAPPED(db, b); return R.linkat(da, m_a, db, m_b, fl); }
/* a symlink's target is data, stored as given; only where it is created is mapped */
VELO_EXPORT int symlink(const char *t, const char *p) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.symlinkat(t, AT_FDCWD, m_p); }
VELO_EXPORT int symlinkat(const char *t, int d, const char *p) { REAL_READY(); MAPPED(d, p); return R.symlinkat(t, d, m_p); }
VELO_EXPORT int chmod(const char *p, mode_t m) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.chmod(m_p, m); }
VELO_EXPORT int fchmodat(int d, const char *p, mode_t m, int fl) { REAL_READY(); MAPPED(d, p); return R.fchmodat(d, m_p, m, fl); }
VELO_EXPORT int chown(const char *p, uid_t u, gid_t g) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.fchownat(AT_FDCWD, m_p, u, g, 0); }
VELO_EXPORT int lchown(const char *p, uid_t u, gid_t g) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.lchown(m_p, u, g); }
VELO_EXPORT int fchownat(int d, const char *p, uid_t u, gid_t g, int fl) { REAL_READY(); MAPPED(d, p); return R.fchownat(d, m_p, u, g, fl); }
VELO_EXPORT int utimensat(int d, const char *p, const struct timespec ts[2], int fl) {
  REAL_READY();
  __asm__("" : "+r"(p)); /* glibc declares p nonnull, but utimensat(fd, NULL, ...) is valid Linux */
  if (!p) return R.utimensat(d, p, ts, fl);
  MAPPED(d, p);
  return R.utimensat(d, m_p, ts, fl);
}
static int tv_to_ts(const struct timeval tv[2], struct timespec ts[2]) {
  if (!tv) return 0;
  for (int i = 0; i < 2; i++) ts[i].tv_sec = tv[i].tv_sec, ts[i].tv_nsec = tv[i].tv_usec * 1000;
  return 1;
}
VELO_EXPORT int utimes(const char *p, const struct timeval tv[2]) {
  struct timespec ts[2];
  return utimensat(AT_FDCWD, p, tv_to_ts(tv, ts) ? ts : NULL, 0);
}
VELO_EXPORT int lutimes(const char *p, const struct timeval tv[2]) {
  struct timespec ts[2];
  return utimensat(AT_FDCWD, p, tv_to_ts(tv, ts) ? ts : NULL, AT_SYMLINK_NOFOLLOW);
}
VELO_EXPORT int utime(const char *p, const struct utimbuf *b) {
  struct timespec ts[2] = {{b ? b->actime : 0, 0}, {b ? b->modtime : 0, 0}};
  return utimensat(AT_FDCWD, p, b ? ts : NULL, 0);
}
VELO_EXPORT int mknod(const char *p, mode_t m, dev_t dev) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.mknodat(AT_FDCWD, m_p, m, dev); }
VELO_EXPORT int mknodat(int d, const char *p, mode_t m, dev_t dev) { REAL_READY(); MAPPED(d, p); return R.mknodat(d, m_p, m, dev); }
VELO_EXPORT int mkfifo(const char *p, mode_t m) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.mknodat(AT_FDCWD, m_p, S_IFIFO | (m & 07777), 0); }
VELO_EXPORT int mkfifoat(int d, const char *p, mode_t m) { REAL_READY(); MAPPED(d, p); return R.mknodat(d, m_p, S_IFIFO | (m & 07777), 0); }
VELO_EXPORT int setxattr(const char *p, const char *n, const void *v, size_t s, int fl) {
  if (n && (!strcmp(n, VELO_XATTR_OBJ) || !strcmp(n, VELO_XATTR_STAMP))) {
    errno = EPERM;
    return -1;
  }
  REAL_READY();
  MAPPED(AT_FDCWD, p);
  return (int)R.syscall(SYS_setxattr, m_p, n, v, s, fl);
}
VELO_EXPORT int lsetxattr(const char *p, const char *n, const void *v, size_t s, int fl) {
  if (n && (!strcmp(n, VELO_XATTR_OBJ) || !strcmp(n, VELO_XATTR_STAMP))) {
    errno = EPERM;
    return -1;
  }
  REAL_READY();
  MAPPED(AT_FDCWD, p);
  return (int)R.syscall(SYS_lsetxattr, m_p, n, v, s, fl);
}
VELO_EXPORT int removexattr(const char *p, const char *n) { REAL_READY(); MAPPED(AT_FDCWD, p); return R.removexattr(m_p, n); }
VELO_EXPORT int lremovexattr(const char *p, const char *n) { REAL_READY(); MAPPED(AT_FDCWD, p); return (int)R.syscall(SYS_lremovexattr, m_p, n); }
VELO_EXPORT int statfs(const char *p, struct statfs *b) { REAL_READY(); MAPPED(AT_FDCWD, p); return (int)R.syscall(SYS_statfs, m_p, b); }
VELO_EXPORT int statfs64(const char *p, struct statfs64 *b) { return statfs(p, (struct statfs *)b); }
VELO_EXPORT int inotify_add_watch(int fd, const char *p, uint32_t mask) { REAL_READY(); MAPPED(AT_FDCWD, p); return (int)R.syscall(SYS_inotify_add_watch, fd, m_p, mask); }

/* mkstemp & co. build the name in place and open it inside libc: map the template, then copy the
 * generated characters back into the caller's template. */
static int mktemp_common(char *tmpl, int suffix, int flags, int kind) {
  REAL_READY();
  char mb[PATH_MAX];
  const char *m = MAP(AT_FDCWD, tmpl, mb);
  char work[PATH_MAX];
  snprintf(work, sizeof work, "%s", m);
  int r;
  if (kind == 1) r = mkdtemp(work) ? 0 : -1;
  else r = mkostemps(work, suffix, flags);
  if (r >= 0 || kind == 1) {
    size_t tl = strlen(tmpl), wl = strlen(work);
    if (tl >= 6 + (size_t)suffix && wl >= 6 + (size_t)suffix)
      memcpy(tmpl + tl - 6 - suffix, work + wl - 6 - suffix, 6);
  }
  return r;
}
VELO_EXPORT int mkstemp(char *t) { return S.phantom ? mktemp_common(t, 0, 0, 0) : mkostemps(t, 0, 0); }
VELO_EXPORT int mkstemp64(char *t) { return mkstemp(t); }
VELO_EXPORT int mkostemp(char *t, int fl) { return S.phantom ? mktemp_common(t, 0, fl, 0) : mkostemps(t, 0, fl); }
