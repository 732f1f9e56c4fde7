/* The volume fingerprint index (fpindex.h). */
#include "fpindex.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC "VELOFPX1"
#define REC_FIXED (8 * 3 + 8 + 4 + 8 + 4 + 32) /* after path: dev ino size mtime_sec mtime_nsec ctime_sec ctime_nsec hash */

static uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static uint32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static uint64_t fnv(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
  return h;
}

static void drop(struct fpindex *ix, const char *path, const char *why) {
  fprintf(stderr, "velo: volume index %s is %s; every file is read again (it is rewritten after this run)\n", path, why);
  free(ix->buf);
  free(ix->slots);
  memset(ix, 0, sizeof *ix);
}

int fpindex_load(struct fpindex *ix, const char *path) {
  memset(ix, 0, sizeof *ix);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    close(fd);
    return -1;
  }
  ix->len = (size_t)st.st_size;
  ix->buf = malloc(ix->len ? ix->len : 1);
  if (!ix->buf) {
    close(fd);
    return -1;
  }
  size_t got = 0;
  while (got < ix->len) {
    ssize_t n = read(fd, ix->buf + got, ix->len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  if (got != ix->len || ix->len < 16 || memcmp(ix->buf, MAGIC, 8) != 0) {
    drop(ix, path, "damaged (not a velo index)");
    return 0;
  }
  uint64_t count = rd64(ix->buf + 8);
  if (count > ix->len / (4 + REC_FIXED)) {
    drop(ix, path, "damaged (count)");
    return 0;
  }
  ix->cap = 16;
  while (ix->cap < count * 2) ix->cap <<= 1;
  ix->slots = calloc(ix->cap, sizeof *ix->slots);
  if (!ix->slots) return -1;
  size_t at = 16;
  for (uint64_t i = 0; i < count; i++) {
    if (ix->len - at < 4) {
      drop(ix, path, "damaged (short)");
      return 0;
    }
    uint32_t pl = rd32(ix->buf + at);
    if (ix->len - at - 4 < (size_t)pl + REC_FIXED) {
      drop(ix, path, "damaged (short)");
      return 0;
    }
    const uint8_t *rec = ix->buf + at;
    size_t s = fnv((const char *)rec + 4, pl) & (ix->cap - 1);
    while (ix->slots[s]) s = (s + 1) & (ix->cap - 1);
    ix->slots[s] = rec;
    ix->count++;
    at += 4 + pl + REC_FIXED;
  }
  if (at != ix->len) drop(ix, path, "damaged (trailing bytes)");
  return 0;
}

void fpindex_free(struct fpindex *ix) {
  free(ix->buf);
  free(ix->slots);
  memset(ix, 0, sizeof *ix);
}

const uint8_t *fpindex_lookup(const struct fpindex *ix, const char *rel, size_t rel_len, const struct stat *st) {
  if (!ix->count) return NULL;
  for (size_t s = fnv(rel, rel_len) & (ix->cap - 1); ix->slots[s]; s = (s + 1) & (ix->cap - 1)) {
    const uint8_t *r = ix->slots[s];
    uint32_t pl = rd32(r);
    if (pl != rel_len || memcmp(r + 4, rel, rel_len) != 0) continue;
    const uint8_t *f = r + 4 + pl;
    if (rd64(f) != (uint64_t)st->st_dev || rd64(f + 8) != (uint64_t)st->st_ino || rd64(f + 16) != (uint64_t)st->st_size ||
        (int64_t)rd64(f + 24) != (int64_t)st->st_mtim.tv_sec || rd32(f + 32) != (uint32_t)st->st_mtim.tv_nsec ||
        (int64_t)rd64(f + 36) != (int64_t)st->st_ctim.tv_sec || rd32(f + 44) != (uint32_t)st->st_ctim.tv_nsec)
      return NULL;
    return f + 48;
  }
  return NULL;
}

static long read_centisecs(const char *file, long dflt) {
  FILE *f = fopen(file, "re");
  long v = dflt;
  if (f) {
    if (fscanf(f, "%ld", &v) != 1 || v < 0) v = dflt;
    fclose(f);
  }
  return v;
}

/* How long before a pass a file's last change must be for the pass to record it. A write(2) updates ctime at once,
 * so a clock tick would do (git's rule); a store through a shared mapping updates it only when it faults on a
 * clean page, so further stores to a page still dirty change bytes but not times — until the kernel has written
 * the page back (write-protecting it again), which it does within dirty_expire + dirty_writeback. A file changed
 * later than that before the pass is read again by the next pass too. Default kernel settings: 30 + 5 + 5 s. */
static long racy_window(void) {
  /* VELO_INDEX_RACY_SECONDS: a host whose volume writers never write through shared mappings may shorten it */
  const char *env = getenv("VELO_INDEX_RACY_SECONDS");
  if (env && *env) {
    char *end;
    long v = strtol(env, &end, 10);
    if (!*end && v >= 1 && v <= 600) return v;
  }
  long expire = read_centisecs("/proc/sys/vm/dirty_expire_centisecs", 3000);
  long every = read_centisecs("/proc/sys/vm/dirty_writeback_centisecs", 500);
  long s = (expire + every) / 100 + 5;
  return s < 2 ? 2 : s > 600 ? 600 : s;
}

int fpindex_writer_open(struct fpindex_writer *w, const char *path, const struct timespec *started) {
  memset(w, 0, sizeof *w);
  if (strlen(path) >= sizeof w->path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(w->path, path);
  snprintf(w->tmp, sizeof w->tmp, "%s.tmp-%d", path, (int)getpid());
  int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  w->f = fdopen(fd, "w");
  if (!w->f) {
    close(fd);
    unlink(w->tmp);
    return -1;
  }
  setvbuf(w->f, NULL, _IOFBF, 1 << 20);
  w->cutoff = *started;
  w->cutoff.tv_sec -= racy_window();
  static const uint8_t head[16] = MAGIC; /* count patched at commit */
  fwrite(head, 1, 16, w->f);
  return 0;
}

int fpindex_writer_add(struct fpindex_writer *w, const char *rel, size_t rel_len, const struct stat *st, const uint8_t hash[32]) {
  if (st->st_ctim.tv_sec > w->cutoff.tv_sec || (st->st_ctim.tv_sec == w->cutoff.tv_sec && st->st_ctim.tv_nsec >= w->cutoff.tv_nsec))
    return 0; /* changed too recently to tell a later change in the same tick apart */
  uint8_t rec[4 + REC_FIXED];
  uint32_t pl = (uint32_t)rel_len;
  uint64_t v[3] = {(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size};
  int64_t ms = st->st_mtim.tv_sec, cs = st->st_ctim.tv_sec;
  uint32_t mn = (uint32_t)st->st_mtim.tv_nsec, cn = (uint32_t)st->st_ctim.tv_nsec;
  memcpy(rec, &pl, 4);
  fwrite(rec, 1, 4, w->f);
  fwrite(rel, 1, rel_len, w->f);
  memcpy(rec, v, 24);
  memcpy(rec + 24, &ms, 8);
  memcpy(rec + 32, &mn, 4);
  memcpy(rec + 36, &cs, 8);
  memcpy(rec + 44, &cn, 4);
  memcpy(rec + 48, hash, 32);
  fwrite(rec, 1, REC_FIXED, w->f);
  w->count++;
  return 0;
}

int fpindex_writer_commit(struct fpindex_writer *w) {
  int ok = fflush(w->f) == 0 && fseek(w->f, 8, SEEK_SET) == 0 && fwrite(&w->count, 1, 8, w->f) == 8 && fflush(w->f) == 0 && fsync(fileno(w->f)) == 0;
  int e = errno;
  if (fclose(w->f) != 0 && ok) ok = 0, e = errno;
  w->f = NULL;
  if (ok && rename(w->tmp, w->path) == 0) return 0;
  if (ok) e = errno;
  unlink(w->tmp);
  errno = e;
  return -1;
}

void fpindex_writer_abort(struct fpindex_writer *w) {
  if (w->f) fclose(w->f);
  w->f = NULL;
  unlink(w->tmp);
}
