/* What velo-ingest and velo-converge share: their output records (fields each ended by a NUL, on a stream of the
 * caller's thread), hex, and opening a directory beneath a root without following symlinks. */
#ifndef VELO_INGEST_RECORDS_H
#define VELO_INGEST_RECORDS_H
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static inline void rec_field(FILE *f, const void *p, size_t n) {
  fwrite(p, 1, n, f);
  fputc(0, f);
}
static inline void rec_str(FILE *f, const char *s) { rec_field(f, s, strlen(s)); }
static inline void rec_u64(FILE *f, uint64_t v) {
  char b[32];
  rec_str(f, (snprintf(b, sizeof b, "%" PRIu64, v), b));
}
static inline void rec_i64(FILE *f, int64_t v) {
  char b[32];
  rec_str(f, (snprintf(b, sizeof b, "%" PRId64, v), b));
}
/* N bytes as 2N lowercase hex digits and a NUL into DST */
static inline void hex_into(const void *p, size_t n, char *dst) {
  static const char d[] = "0123456789abcdef";
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) dst[2 * i] = d[b[i] >> 4], dst[2 * i + 1] = d[b[i] & 15];
  dst[2 * n] = 0;
}
/* N bytes as one hex field */
static inline void rec_hex(FILE *f, const void *p, size_t n) {
  static const char d[] = "0123456789abcdef";
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) fputc(d[b[i] >> 4], f), fputc(d[b[i] & 15], f);
  fputc(0, f);
}

/* Directory REL beneath ROOTFD, one component at a time, never through a symlink (O_NOFOLLOW on each): a subtree
 * queued for another thread is opened again when that thread takes it. -1 with errno (ENOENT, ENOTDIR, ELOOP: it
 * is gone or no longer a directory since it was listed). */
static inline int open_dir_beneath(int rootfd, const char *rel) {
  int fd = dup(rootfd);
  if (fd < 0) return -1;
  char part[256];
  for (const char *p = rel; *p;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= sizeof part) {
      close(fd);
      errno = EINVAL;
      return -1;
    }
    memcpy(part, p, n);
    part[n] = 0;
    int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(fd);
    if (next < 0) {
      errno = e;
      return -1;
    }
    fd = next;
    p += n + (slash ? 1 : 0);
  }
  return fd;
}
#endif
