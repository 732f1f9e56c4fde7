/* velo-xattr: extended attributes for the TypeScript side (Node has no xattr calls).
 *
 *   velo-xattr set FILE        < block   set every attribute of a canonical block (native/common/velo_xattrs.h)
 *                                        on FILE without following a final symlink (the store's temp objects)
 *   velo-xattr get             < paths   NUL-separated paths; for each that has attributes: path \0 hex(block) \0
 *   velo-xattr tree DIR                  walk DIR without following symlinks (each directory opened with
 *                                        O_NOFOLLOW relative to its parent's fd, attributes read through
 *                                        /proc/self/fd/<dirfd>/<name> with the l* calls, so nothing planted in
 *                                        the tree can redirect a read); for each entry with attributes:
 *                                        relpath ("." = DIR) \0 hex(block) \0
 * Blocks written are canonical (names sorted, unique). ENOTSUP (a filesystem without xattrs) reads as none.
 * Exit 0 on success; otherwise "velo-xattr: PATH: what: why" on stderr and exit 1. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "../common/velo_err.h"
#include "../common/velo_xattrs.h"

struct buf {
  uint8_t *p;
  size_t len, cap;
};

static int buf_put(struct buf *b, const void *data, size_t n, struct velo_err *err) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return velo_fail(err, ENOMEM, "out of memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  return 0;
}

static int buf_u32(struct buf *b, uint32_t v, struct velo_err *err) {
  uint8_t x[4] = {v & 255, (v >> 8) & 255, (v >> 16) & 255, v >> 24};
  return buf_put(b, x, 4, err);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Read all attributes of PATH (l* calls: a final symlink is not followed) into a canonical block.
 * Returns the number of attributes (0: none, block left empty), < 0 on error. */
static int read_block(const char *path, const char *shown, struct buf *out, struct velo_err *err) {
  out->len = 0;
  ssize_t n = llistxattr(path, NULL, 0);
  if (n < 0) {
    if (errno == ENOTSUP || errno == EOPNOTSUPP) return 0;
    return VELO_FAIL_ERRNO(err, "%s: list xattrs", shown);
  }
  if (n == 0) return 0;
  cleanup_free char *names = malloc((size_t)n + 1);
  if (!names) return velo_fail(err, ENOMEM, "out of memory");
  n = llistxattr(path, names, (size_t)n);
  if (n < 0) return VELO_FAIL_ERRNO(err, "%s: list xattrs", shown); /* ERANGE: changed meanwhile; fail, do not guess */
  size_t count = 0;
  for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) count++;
  cleanup_free char **v = calloc(count ? count : 1, sizeof *v);
  if (!v) return velo_fail(err, ENOMEM, "out of memory");
  size_t k = 0;
  for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) v[k++] = names + i;
  qsort(v, count, sizeof *v, cmp_names);
  if (buf_u32(out, (uint32_t)count, err) < 0) return -1;
  cleanup_free char *val = malloc(VELO_XATTR_SIZE_MAX);
  if (!val) return velo_fail(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < count; i++) {
    ssize_t vl = lgetxattr(path, v[i], val, VELO_XATTR_SIZE_MAX);
    if (vl < 0) return VELO_FAIL_ERRNO(err, "%s: read xattr %s", shown, v[i]);
    size_t nl = strlen(v[i]);
    if (buf_u32(out, (uint32_t)nl, err) < 0 || buf_u32(out, (uint32_t)vl, err) < 0 || buf_put(out, v[i], nl, err) < 0 ||
        buf_put(out, val, (size_t)vl, err) < 0)
      return -1;
  }
  return (int)count;
}

static void emit(const char *path, const struct buf *b) {
  static const char hx[] = "0123456789abcdef";
  fputs(path, stdout);
  putchar(0);
  for (size_t i = 0; i < b->len; i++) {
    putchar(hx[b->p[i] >> 4]);
    putchar(hx[b->p[i] & 15]);
  }
  putchar(0);
}

static int cmd_set(const char *file, struct velo_err *err) {
  struct buf in = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
    if (buf_put(&in, chunk, n, err) < 0) return -1;
  if (ferror(stdin)) return velo_fail(err, EIO, "read stdin");
  struct velo_xattr_it it;
  struct velo_xattr x;
  if (velo_xattrs_begin(&it, in.p, in.len, err) < 0) return -1;
  int r;
  while ((r = velo_xattrs_next(&it, &x, err)) > 0)
    if (lsetxattr(file, x.name, x.value, x.value_len, 0) < 0) return VELO_FAIL_ERRNO(err, "%s: set xattr %s", file, x.name);
  free(in.p);
  return r;
}

static int cmd_get(struct velo_err *err) {
  struct buf b = {0};
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getdelim(&line, &cap, '\0', stdin)) > 0) {
    if (line[n - 1] != 0) return velo_fail(err, 0, "truncated path on stdin");
    int c = read_block(line, line, &b, err);
    if (c < 0) return -1;
    if (c > 0) emit(line, &b);
  }
  free(line);
  free(b.p);
  return 0;
}

static void closedirp(DIR **d) {
  if (*d) closedir(*d);
}

static int walk(int dfd, const char *rel, struct buf *b, struct velo_err *err) {
  char proc[64], self[72];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", dfd);
  /* "<magic link>/." : the l* calls would act on the magic link itself if it were the final component */
  snprintf(self, sizeof self, "%s/.", proc);
  int c = read_block(self, rel, b, err);
  if (c < 0) return -1;
  if (c > 0) emit(rel, b);
  int dup_fd = dup(dfd);
  if (dup_fd < 0) return VELO_FAIL_ERRNO(err, "%s: dup", rel);
  __attribute__((cleanup(closedirp))) DIR *d = fdopendir(dup_fd);
  if (!d) {
    close(dup_fd);
    return VELO_FAIL_ERRNO(err, "%s: opendir", rel);
  }
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) return VELO_FAIL_ERRNO(err, "%s: readdir", rel);
      break;
    }
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    cleanup_free char *child = NULL;
    if (asprintf(&child, "%s%s%s", strcmp(rel, ".") ? rel : "", strcmp(rel, ".") ? "/" : "", de->d_name) < 0)
      return velo_fail(err, ENOMEM, "%s: path", rel);
    struct stat st;
    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(err, "%s: lstat", child);
    if (S_ISDIR(st.st_mode)) {
      cleanup_fd int cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0) return VELO_FAIL_ERRNO(err, "%s: open", child);
      if (walk(cfd, child, b, err) < 0) return -1;
      continue;
    }
    cleanup_free char *p = NULL;
    if (asprintf(&p, "%s/%s", proc, de->d_name) < 0) return velo_fail(err, ENOMEM, "%s: path", child);
    c = read_block(p, child, b, err);
    if (c < 0) return -1;
    if (c > 0) emit(child, b);
  }
  return 0;
}

int main(int argc, char **argv) {
  struct velo_err err = {0};
  int rc;
  if (argc == 3 && strcmp(argv[1], "set") == 0)
    rc = cmd_set(argv[2], &err);
  else if (argc == 2 && strcmp(argv[1], "get") == 0)
    rc = cmd_get(&err);
  else if (argc == 3 && strcmp(argv[1], "tree") == 0) {
    cleanup_fd int root = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct buf b = {0};
    rc = root < 0 ? VELO_FAIL_ERRNO(&err, "%s: open", argv[2]) : walk(root, ".", &b, &err);
    free(b.p);
  } else {
    fprintf(stderr, "usage: velo-xattr set FILE < block | get < paths | tree DIR\n");
    return 2;
  }
  if (rc < 0) {
    fprintf(stderr, "velo-xattr: %s\n", err.msg);
    return 1;
  }
  if (fflush(stdout) != 0) {
    perror("velo-xattr: write");
    return 1;
  }
  return 0;
}
