/* velo-upper DIR: reports the overlayfs metadata of an upper directory that Node cannot read (xattrs), so
 * `velo sandbox commit` can turn a tenant's upper dir into a layer.
 *
 * Walks DIR without following symlinks (every directory is opened with openat(O_NOFOLLOW | O_DIRECTORY)
 * relative to its parent's fd, so nothing planted in the tree can redirect the walk) and writes records to
 * stdout, each two NUL-terminated fields: a kind letter and the path relative to DIR ("." for DIR):
 *   o  directory is opaque (trusted.overlay.opaque or user.overlay.opaque = "y")
 *   r  directory is a redirect (overlay.redirect: a renamed lower dir; cannot be expressed as a layer)
 *   m  file is a metacopy (overlay.metacopy: data lives in a lower layer; cannot be expressed as a layer)
 *   x  opaque "x" / overlay.whiteout xattr whiteout (composefs-style), reported so the caller can refuse it
 * Overlay whiteouts proper (char devices 0/0) are visible to lstat and are not reported here.
 * Exit 0 after a complete walk; on error "velo-upper: PATH: what: why" on stderr and exit 1. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "../common/velo_err.h"

static const char *const PREFIXES[] = {"trusted.overlay.", "user.overlay."};

/* 1 when the xattr `prefix+name` exists on fd (value copied into val), 0 when absent, <0 on error. */
static int get_ovl_xattr(int fd, const char *name, char *val, size_t vlen, const char *path, struct velo_err *err) {
  for (size_t i = 0; i < sizeof PREFIXES / sizeof PREFIXES[0]; i++) {
    char key[64];
    snprintf(key, sizeof key, "%s%s", PREFIXES[i], name);
    ssize_t n = fgetxattr(fd, key, val, vlen > 0 ? vlen - 1 : 0);
    if (n >= 0) {
      if (vlen > 0) val[n] = 0;
      return 1;
    }
    if (errno == ERANGE) {
      if (vlen > 0) val[0] = 0;
      return 1;
    }
    if (errno != ENODATA && errno != ENOTSUP && errno != EOPNOTSUPP) return VELO_FAIL_ERRNO(err, "%s: read xattr %s", path, key);
  }
  return 0;
}

static void emit(char kind, const char *path) {
  putchar(kind);
  putchar(0);
  fputs(path, stdout);
  putchar(0);
}

static void closedirp(DIR **d) {
  if (*d) closedir(*d);
}

static int walk(int dfd, const char *path, struct velo_err *err) {
  char val[8];
  int r = get_ovl_xattr(dfd, "opaque", val, sizeof val, path, err);
  if (r < 0) return r;
  if (r > 0 && val[0] == 'y') emit('o', path);
  if (r > 0 && val[0] == 'x') emit('x', path);
  char big[4096];
  r = get_ovl_xattr(dfd, "redirect", big, sizeof big, path, err);
  if (r < 0) return r;
  if (r > 0) emit('r', path);

  int dup_fd = dup(dfd);
  if (dup_fd < 0) return VELO_FAIL_ERRNO(err, "%s: dup", path);
  __attribute__((cleanup(closedirp))) DIR *d = fdopendir(dup_fd);
  if (!d) {
    close(dup_fd);
    return VELO_FAIL_ERRNO(err, "%s: opendir", path);
  }
  struct dirent *de;
  for (;;) {
    errno = 0;
    de = readdir(d);
    if (!de) {
      if (errno) return VELO_FAIL_ERRNO(err, "%s: readdir", path);
      break;
    }
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    cleanup_free char *child = NULL;
    if (asprintf(&child, "%s/%s", strcmp(path, ".") ? path : "", de->d_name) < 0) return velo_fail(err, ENOMEM, "%s: path", path);
    const char *rel = child[0] == '/' ? child + 1 : child;
    struct stat st;
    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(err, "%s: lstat", rel);
    if (S_ISDIR(st.st_mode)) {
      cleanup_fd int cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0) return VELO_FAIL_ERRNO(err, "%s: open", rel);
      if (walk(cfd, rel, err) < 0) return -1;
    } else if (S_ISREG(st.st_mode)) {
      /* O_NONBLOCK: never wait on anything; O_NOFOLLOW: a symlink swapped in since the lstat fails. */
      cleanup_fd int rfd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (rfd < 0) {
        /* unreadable file (mode 000 as non-root): it cannot carry overlay xattrs we could act on */
        if (errno == EACCES) continue;
        return VELO_FAIL_ERRNO(err, "%s: open", rel);
      }
      r = get_ovl_xattr(rfd, "metacopy", big, sizeof big, rel, err);
      if (r < 0) return r;
      if (r > 0) emit('m', rel);
      r = get_ovl_xattr(rfd, "whiteout", big, sizeof big, rel, err);
      if (r < 0) return r;
      if (r > 0) emit('x', rel);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: velo-upper DIR\n");
    return 2;
  }
  struct velo_err err = {0};
  cleanup_fd int root = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) {
    VELO_FAIL_ERRNO(&err, "%s: open", argv[1]);
    fprintf(stderr, "velo-upper: %s\n", err.msg);
    return 1;
  }
  if (walk(root, ".", &err) < 0) {
    fprintf(stderr, "velo-upper: %s\n", err.msg);
    return 1;
  }
  if (fflush(stdout) != 0) {
    perror("velo-upper: write");
    return 1;
  }
  return 0;
}
