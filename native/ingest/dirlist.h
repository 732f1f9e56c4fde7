/* A directory's names, sorted bytewise, read from an fd the caller already holds, freshly opened (getdents64 from
 * where it stands: the start):
 * no second open through a /proc/self/fd path and no extra fd per directory, which scandir(3) would cost on every
 * directory of a tree walk. Shared by velo-ingest and velo-converge. */
#ifndef VELO_DIRLIST_H
#define VELO_DIRLIST_H
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct dirlist {
  char **names; /* NUL-terminated, without "." and ".." */
  size_t n;
  char *pool; /* the names' bytes */
};

static int dirlist_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* 0, or -1 with errno. */
static inline int dirlist_read(int dfd, struct dirlist *dl) {
  memset(dl, 0, sizeof *dl);
  size_t cap = 1 << 15, used = 0;
  char *pool = malloc(cap);
  if (!pool) return -1;
  char buf[1 << 15];
  size_t count = 0;
  for (;;) {
    long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      free(pool);
      return -1;
    }
    if (n == 0) break;
    for (long off = 0; off < n;) {
      struct {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[];
      } *d = (void *)(buf + off);
      off += d->reclen;
      if (d->name[0] == '.' && (d->name[1] == 0 || (d->name[1] == '.' && d->name[2] == 0))) continue;
      size_t l = strlen(d->name) + 1;
      while (used + l > cap) {
        char *p = realloc(pool, cap *= 2);
        if (!p) {
          free(pool);
          return -1;
        }
        pool = p;
      }
      memcpy(pool + used, d->name, l);
      used += l;
      count++;
    }
  }
  dl->names = malloc((count ? count : 1) * sizeof *dl->names);
  if (!dl->names) {
    free(pool);
    return -1;
  }
  for (size_t i = 0, at = 0; i < count; i++, at += strlen(pool + at) + 1) dl->names[i] = pool + at;
  dl->n = count;
  dl->pool = pool;
  qsort(dl->names, count, sizeof *dl->names, dirlist_cmp);
  return 0;
}

static inline void dirlist_free(struct dirlist *dl) {
  free(dl->names);
  free(dl->pool);
  memset(dl, 0, sizeof *dl);
}
#endif
