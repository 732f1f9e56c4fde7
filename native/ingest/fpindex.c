/* The volume fingerprint index (fpindex.h). */
#include "fpindex.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC1 "VELOFPX1"
#define MAGIC2 "VELOFPX2"
#define FLAG_COMPLETE 1u
/* after the path: dev ino size mtime_sec mtime_nsec ctime_sec ctime_nsec, then (version 2) st_mode vouched, then hash */
#define REC_TIMES (8 * 3 + 8 + 4 + 8 + 4)
#define REC_FIXED1 (REC_TIMES + 32)
#define REC_FIXED2 (REC_TIMES + 4 + 1 + 32)
#define HEAD1 16
#define HEAD2 24

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
  int v2 = got == ix->len && ix->len >= HEAD2 && memcmp(ix->buf, MAGIC2, 8) == 0;
  if (!v2 && (got != ix->len || ix->len < HEAD1 || memcmp(ix->buf, MAGIC1, 8) != 0)) {
    drop(ix, path, "damaged (not a velo index)");
    return 0;
  }
  size_t head = v2 ? HEAD2 : HEAD1, fixed = v2 ? REC_FIXED2 : REC_FIXED1;
  uint64_t count = rd64(ix->buf + 8);
  if (count > ix->len / (4 + fixed)) {
    drop(ix, path, "damaged (count)");
    return 0;
  }
  ix->version = v2 ? 2 : 1;
  ix->complete = v2 && (rd64(ix->buf + 16) & FLAG_COMPLETE);
  ix->cap = 16;
  while (ix->cap < count * 2) ix->cap <<= 1;
  ix->slots = calloc(ix->cap, sizeof *ix->slots);
  ix->seen = calloc(ix->cap, 1);
  if (!ix->slots || !ix->seen) return -1;
  size_t at = head;
  for (uint64_t i = 0; i < count; i++) {
    if (ix->len - at < 4) {
      drop(ix, path, "damaged (short)");
      return 0;
    }
    uint32_t pl = rd32(ix->buf + at);
    if (ix->len - at - 4 < (size_t)pl + fixed) {
      drop(ix, path, "damaged (short)");
      return 0;
    }
    const uint8_t *rec = ix->buf + at;
    size_t s = fnv((const char *)rec + 4, pl) & (ix->cap - 1);
    while (ix->slots[s]) s = (s + 1) & (ix->cap - 1);
    ix->slots[s] = rec;
    ix->count++;
    at += 4 + pl + fixed;
  }
  if (at != ix->len) drop(ix, path, "damaged (trailing bytes)");
  return 0;
}

void fpindex_free(struct fpindex *ix) {
  free(ix->buf);
  free(ix->slots);
  free(ix->seen);
  memset(ix, 0, sizeof *ix);
}

long fpindex_find(const struct fpindex *ix, const char *rel, size_t rel_len) {
  if (!ix->count) return -1;
  for (size_t s = fnv(rel, rel_len) & (ix->cap - 1); ix->slots[s]; s = (s + 1) & (ix->cap - 1)) {
    const uint8_t *r = ix->slots[s];
    if (rd32(r) == rel_len && memcmp(r + 4, rel, rel_len) == 0) return (long)s;
  }
  return -1;
}

/* a version 1 record is a regular file's, vouched for */
static uint32_t rec_mode(const struct fpindex *ix, const uint8_t *f) { return ix->version == 2 ? rd32(f + REC_TIMES) : S_IFREG; }
/* 1: vouched for, its hash recorded (or not a regular file); 2: vouched for, no hash (a file velo-ingest leaves to
 * the TypeScript side: extended attributes, a placeholder); 0: present only */
static int rec_vouched(const struct fpindex *ix, const uint8_t *f) { return ix->version == 1 ? 1 : f[REC_TIMES + 4]; }
static const uint8_t *rec_hash(const struct fpindex *ix, const uint8_t *f) { return f + (ix->version == 2 ? REC_TIMES + 5 : REC_TIMES); }

/* the record at SLOT vouched for (at least LEVEL) and ST matching it: its fields after the path, else NULL */
static const uint8_t *same(const struct fpindex *ix, long slot, const struct stat *st, int level) {
  if (slot < 0) return NULL;
  const uint8_t *r = ix->slots[slot];
  const uint8_t *f = r + 4 + rd32(r);
  int v = rec_vouched(ix, f);
  if (!v || (level == 1 && v != 1) || rec_mode(ix, f) != (uint32_t)st->st_mode) return NULL;
  if (rd64(f) != (uint64_t)st->st_dev || rd64(f + 8) != (uint64_t)st->st_ino || rd64(f + 16) != (uint64_t)st->st_size ||
      (int64_t)rd64(f + 24) != (int64_t)st->st_mtim.tv_sec || rd32(f + 32) != (uint32_t)st->st_mtim.tv_nsec ||
      (int64_t)rd64(f + 36) != (int64_t)st->st_ctim.tv_sec || rd32(f + 44) != (uint32_t)st->st_ctim.tv_nsec)
    return NULL;
  return f;
}

const uint8_t *fpindex_match(const struct fpindex *ix, long slot, const struct stat *st) {
  const uint8_t *f = same(ix, slot, st, 1);
  return f ? rec_hash(ix, f) : NULL;
}

int fpindex_same(const struct fpindex *ix, long slot, const struct stat *st) { return same(ix, slot, st, 2) != NULL; }

const uint8_t *fpindex_lookup(const struct fpindex *ix, const char *rel, size_t rel_len, const struct stat *st) {
  return S_ISREG(st->st_mode) ? fpindex_match(ix, fpindex_find(ix, rel, rel_len), st) : NULL;
}

void fpindex_mark(struct fpindex *ix, long slot, int is_dir) {
  if (slot >= 0) __atomic_store_n(&ix->seen[slot], (uint8_t)(is_dir ? 2 : 1), __ATOMIC_RELAXED);
}

void fpindex_each_gone(const struct fpindex *ix, void (*cb)(void *ctx, const char *rel, size_t rel_len), void *ctx) {
  for (size_t s = 0; s < ix->cap; s++) {
    if (!ix->slots[s] || ix->seen[s]) continue;
    const uint8_t *r = ix->slots[s];
    uint32_t pl = rd32(r);
    const char *rel = (const char *)r + 4;
    size_t parent = pl;
    while (parent > 0 && rel[parent - 1] != '/') parent--;
    if (parent > 0) {
      long ps = fpindex_find(ix, rel, parent - 1);
      if (ps < 0 || ix->seen[ps] != 2) continue; /* gone with its parent, or under what is no directory now */
    }
    cb(ctx, rel, pl);
  }
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

int fpindex_writer_open(struct fpindex_writer *w, const char *path, const struct timespec *started, int complete) {
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
  uint8_t head[HEAD2] = MAGIC2; /* count patched at commit */
  uint64_t flags = complete ? FLAG_COMPLETE : 0;
  memcpy(head + 16, &flags, 8);
  fwrite(head, 1, HEAD2, w->f);
  return 0;
}

static int record(struct fpindex_writer *w, const char *rel, size_t rel_len, const struct stat *st, int vouched, const uint8_t hash[32]) {
  /* changed too recently to tell a later change in the same tick apart: present, not vouched for */
  if (st->st_ctim.tv_sec > w->cutoff.tv_sec || (st->st_ctim.tv_sec == w->cutoff.tv_sec && st->st_ctim.tv_nsec >= w->cutoff.tv_nsec)) vouched = 0;
  uint8_t rec[REC_FIXED2];
  uint32_t pl = (uint32_t)rel_len, mode = (uint32_t)st->st_mode;
  uint64_t v[3] = {(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size};
  int64_t ms = st->st_mtim.tv_sec, cs = st->st_ctim.tv_sec;
  uint32_t mn = (uint32_t)st->st_mtim.tv_nsec, cn = (uint32_t)st->st_ctim.tv_nsec;
  fwrite(&pl, 1, 4, w->f);
  fwrite(rel, 1, rel_len, w->f);
  memcpy(rec, v, 24);
  memcpy(rec + 24, &ms, 8);
  memcpy(rec + 32, &mn, 4);
  memcpy(rec + 36, &cs, 8);
  memcpy(rec + 44, &cn, 4);
  memcpy(rec + REC_TIMES, &mode, 4);
  rec[REC_TIMES + 4] = (uint8_t)vouched;
  if (hash) memcpy(rec + REC_TIMES + 5, hash, 32);
  else memset(rec + REC_TIMES + 5, 0, 32);
  fwrite(rec, 1, REC_FIXED2, w->f);
  w->count++;
  return ferror(w->f) ? -1 : 0;
}

int fpindex_writer_add(struct fpindex_writer *w, const char *rel, size_t rel_len, const struct stat *st, const uint8_t hash[32]) {
  return record(w, rel, rel_len, st, 1, hash);
}

int fpindex_writer_seen(struct fpindex_writer *w, const char *rel, size_t rel_len, const struct stat *st, int vouchable) {
  return record(w, rel, rel_len, st, vouchable ? 2 : 0, NULL);
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
