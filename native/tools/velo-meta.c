/* velo-meta ROOT [--no-chown]: applies file metadata to paths beneath ROOT, reading records from stdin.
 *
 * Node has no mknod, setxattr or nanosecond utimes, so the TypeScript side (checkout, link farms) writes
 * contents itself and hands the metadata of a whole tree to this one process. Every path is resolved
 * beneath ROOT with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a symlink in the tree (e.g. planted by
 * an image) can never redirect an operation outside ROOT.
 *
 * A record is 10 NUL-terminated fields: path (relative to ROOT; "." for ROOT itself), type, mode (octal, 07777), uid,
 * gid, mtime_sec, mtime_nsec, rdev, flags, xattrs (hex of a canonical block; overlayfs' own attributes in it are
 * refused: only the opaque flag may set one), as ../common/meta.h describes them, in the order it says. Exit 0 when
 * all records applied; otherwise the first error is printed as "velo-meta: PATH: what: why" and the exit status is 1
 * (nothing after it is applied). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include "../common/meta.h"

/* Read one NUL-terminated field; returns NULL at a clean EOF before the field starts. */
static char *field(FILE *in, int *eof) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getdelim(&line, &cap, '\0', in);
  if (n <= 0) {
    free(line);
    *eof = 1;
    return NULL;
  }
  if (line[n - 1] != '\0') {
    free(line);
    *eof = 2; /* truncated record */
    return NULL;
  }
  return line;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: velo-meta ROOT [--no-chown] < records\n");
    return 2;
  }
  int do_chown = !(argc > 2 && strcmp(argv[2], "--no-chown") == 0);
  cleanup_fd int root = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) {
    fprintf(stderr, "velo-meta: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  struct velo_err err = {0};
  for (unsigned long n = 0;; n++) {
    char *f[10];
    int eof = 0, i;
    for (i = 0; i < 10; i++) {
      f[i] = field(stdin, &eof);
      if (!f[i]) break;
    }
    if (i == 0 && eof == 1) return 0;
    if (i < 10) {
      fprintf(stderr, "velo-meta: record %lu is truncated\n", n);
      return 1;
    }
    struct velo_meta r = {
        .path = f[0],
        .type = f[1][0],
        .mode = (mode_t)strtoul(f[2], NULL, 8),
        .uid = (uid_t)strtoul(f[3], NULL, 10),
        .gid = (gid_t)strtoul(f[4], NULL, 10),
        .mtime = {.tv_sec = strtoll(f[5], NULL, 10), .tv_nsec = strtol(f[6], NULL, 10)},
        .rdev = (dev_t)strtoull(f[7], NULL, 10),
        .flags = (unsigned)strtoul(f[8], NULL, 10),
        .xattrs_hex = f[9],
    };
    int rc = velo_meta_apply(root, &r, do_chown, &err);
    for (i = 0; i < 10; i++) free(f[i]);
    if (rc < 0) {
      fprintf(stderr, "velo-meta: %s\n", err.msg);
      return 1;
    }
  }
}
