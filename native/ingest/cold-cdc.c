/* velo-cold: content-defined chunks of large cold objects (docs/volumes.md, "Chunks of large files"). */
#include "cold.h"

/* FastCDC (Xia et al., USENIX ATC 2016): a gear rolling hash, cut where its masked bits are all zero; a stricter mask
 * before the normal size and a looser one after ("normalized chunking", level 2) keep sizes near the average */
#define CHUNK_MIN (16u << 10)
#define CHUNK_AVG (64u << 10)
#define CHUNK_MAX (256u << 10)
#define CDC_MAGIC "VELOCDC1"

static uint64_t gear[256], mask_s, mask_l;

/* the gear table from splitmix64 with a fixed seed: chunk boundaries (hence sharing) must be the same in every run */
void cdc_init(void) {
  uint64_t x = 0x76656c6f2d636463ull; /* "velo-cdc" */
  for (int i = 0; i < 256; i++) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    gear[i] = z ^ (z >> 31);
  }
  /* one bits spread over the high half, where the gear hash mixes the last bytes: 18 before the average, 14 after */
  for (int i = 0; i < 18; i++) mask_s |= 1ull << (63 - 2 * i);
  for (int i = 0; i < 14; i++) mask_l |= 1ull << (63 - 2 * i);
}

/* The length of the next chunk of the n bytes at p (n < CHUNK_MAX only at the end of the object). */
static size_t cdc_cut(const uint8_t *p, size_t n) {
  if (n <= CHUNK_MIN) return n;
  size_t end = n < CHUNK_MAX ? n : CHUNK_MAX, normal = n < CHUNK_AVG ? n : CHUNK_AVG;
  uint64_t fp = 0;
  size_t i = CHUNK_MIN;
  for (; i < normal; i++) {
    fp = (fp << 1) + gear[p[i]];
    if (!(fp & mask_s)) return i + 1;
  }
  for (; i < end; i++) {
    fp = (fp << 1) + gear[p[i]];
    if (!(fp & mask_l)) return i + 1;
  }
  return end;
}

/* the chunk's path below CHUNKDIR: "<h0h1>/<64 hex>" */
static void chunk_rel(const uint8_t dg[32], char out[68]) {
  char hex[65];
  hex_into(dg, 32, hex);
  snprintf(out, 68, "%.2s/%s", hex, hex);
}

/* a set of 32-byte digests (open addressing; the all-zero digest marks an empty slot) */
struct dset {
  uint8_t (*k)[32];
  size_t cap, n;
};
static const uint8_t ZERO[32];
static size_t dset_slot(const struct dset *s, const uint8_t dg[32]) {
  uint64_t h;
  memcpy(&h, dg, sizeof h);
  size_t i = (size_t)h & (s->cap - 1);
  while (memcmp(s->k[i], ZERO, 32) && memcmp(s->k[i], dg, 32)) i = (i + 1) & (s->cap - 1);
  return i;
}
static void dset_add(struct dset *s, const uint8_t dg[32]) {
  if (2 * (s->n + 1) > s->cap) {
    struct dset g = {calloc(s->cap ? 2 * s->cap : 1 << 12, 32), s->cap ? 2 * s->cap : 1 << 12, 0};
    if (!g.k) die("-", "malloc");
    for (size_t i = 0; i < s->cap; i++)
      if (memcmp(s->k[i], ZERO, 32)) memcpy(g.k[dset_slot(&g, s->k[i])], s->k[i], 32), g.n++;
    free(s->k);
    *s = g;
  }
  size_t i = dset_slot(s, dg);
  if (memcmp(s->k[i], dg, 32)) memcpy(s->k[i], dg, 32), s->n++;
}
static int dset_has(const struct dset *s, const uint8_t dg[32]) { return s->cap && !memcmp(s->k[dset_slot(s, dg)], dg, 32); }

struct new_chunk {
  uint8_t dg[32];
  char *tmp;
};
static struct new_chunk *new_chunks;
static size_t n_new_chunks, cap_new_chunks;
static struct dset new_set; /* the digests of new_chunks */

/* Whether the store has this chunk, whole: one in place is read back and checked (a recipe must never name a damaged
 * chunk: the caller writes a good one over it, from the bytes it has); one this run wrote is checked already. */
static int chunk_known(const uint8_t dg[32], size_t len) {
  if (dset_has(&new_set, dg)) return 1; /* written by this run, not yet in place (a recipe repeating a chunk) */
  char rel[68], hex[65];
  chunk_rel(dg, rel);
  int fd = openat(chunk_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return 0;
  hex_into(dg, 32, hex);
  int ok = !*unpack_as(fd, -1, hex, len, NULL, rel);
  close(fd);
  return ok;
}

/* A new chunk compressed into a temp file and checked by decompressing it; returns what the file takes on disk. */
static uint64_t chunk_store(ZSTD_CCtx *c, const uint8_t *p, size_t n, const uint8_t dg[32]) {
  char tmp[4200], hex[65];
  int t = open_temp(tmp, sizeof tmp);
  ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
  size_t z = ZSTD_compress2(c, out_buf, BUF, p, n);
  if (ZSTD_isError(z)) {
    errno = EIO;
    die(tmp, ZSTD_getErrorName(z));
  }
  write_all(t, out_buf, z, tmp);
  hex_into(dg, 32, hex);
  const char *why = unpack_as(t, -1, hex, n, NULL, tmp);
  if (*why) {
    errno = EIO;
    die(tmp, why);
  }
  if (close(t) < 0) die(tmp, "close");
  if (n_new_chunks == cap_new_chunks && !(new_chunks = realloc(new_chunks, (cap_new_chunks = cap_new_chunks ? 2 * cap_new_chunks : 256) * sizeof *new_chunks))) die("-", "malloc");
  memcpy(new_chunks[n_new_chunks].dg, dg, 32);
  if (!(new_chunks[n_new_chunks++].tmp = strdup(tmp))) die("-", "malloc");
  dset_add(&new_set, dg);
  return z;
}

/* Cut the object in fd into chunks, store the new ones (temp files, see new_chunks) and write its recipe into a temp
 * file; its path in tmp. Returns "" or why the object stays hot (it is not what its name says). */
const char *chunk_object(int fd, const struct oname *o, const char *name, ZSTD_CCtx *c, char *tmp, size_t cap, uint64_t *new_bytes, uint64_t *chunks, uint64_t *fresh) {
  static uint8_t *win;
  if (!win && !(win = malloc(BUF))) die("-", "malloc");
  int r = open_temp(tmp, cap);
  uint8_t head[12];
  memcpy(head, CDC_MAGIC, 8);
  put_u32(head + 8, 0); /* the count, written at the end */
  write_all(r, head, sizeof head, tmp);
  blake3_hasher whole;
  blake3_hasher_init(&whole);
  uint64_t off = 0, total = 0;
  size_t start = 0, have = 0; /* the bytes not yet cut: win[start, start + have) */
  int eof = 0;
  *new_bytes = 0, *chunks = 0, *fresh = 0;
  for (;;) {
    if (!eof && have < CHUNK_MAX) {
      /* refill: what is left moves to the front only now, once per ~1 MiB read */
      memmove(win, win + start, have);
      start = 0;
      while (!eof && have < BUF) {
        ssize_t n = pread(fd, win + have, BUF - have, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die(name, "read");
        if (n == 0) eof = 1;
        off += (uint64_t)n, have += (size_t)n;
      }
    }
    if (have == 0) break;
    const uint8_t *p = win + start;
    size_t len = cdc_cut(p, have);
    uint8_t dg[32], ent[36];
    blake3_hasher h;
    blake3_hasher_init(&h);
    blake3_hasher_update(&h, p, len);
    blake3_hasher_finalize(&h, dg, 32);
    blake3_hasher_update(&whole, p, len);
    if (!chunk_known(dg, len)) {
      *new_bytes += chunk_store(c, p, len, dg);
      (*fresh)++;
    }
    memcpy(ent, dg, 32);
    put_u32(ent + 32, (uint32_t)len);
    write_all(r, ent, sizeof ent, tmp);
    (*chunks)++, total += len;
    start += len, have -= len;
  }
  uint8_t dg[32];
  char hex[65];
  blake3_hasher_finalize(&whole, dg, 32);
  hex_into(dg, 32, hex);
  if (total != o->size || strcmp(hex, o->hash)) {
    close(r);
    unlink(tmp);
    return "changed";
  }
  if (*chunks > UINT32_MAX) { /* a recipe counts its chunks in 32 bits (an object of ~64 TiB and more) */
    close(r);
    unlink(tmp);
    return "too-large";
  }
  put_u32(head + 8, (uint32_t)*chunks);
  if (pwrite(r, head, sizeof head, 0) != (ssize_t)sizeof head) die(tmp, "write");
  struct stat st;
  if (fstat(r, &st) < 0) die(tmp, "stat");
  *new_bytes += (uint64_t)st.st_size;
  if (close(r) < 0) die(tmp, "close");
  return "";
}

/* the chunk the last unchunk found bad (hex), or "" when what it found was not one chunk's fault */
char bad_chunk[65];

/* Put a chunked object together from its recipe (fd) into out (-1: nowhere), each chunk checked against its name;
 * "" when the whole hashes to o, else why not (bad_chunk: the chunk at fault, when one is). */
const char *unchunk(int rfd, int out, const struct oname *o, const char *what) {
  static char why[300];
  bad_chunk[0] = 0;
  struct stat st;
  if (fstat(rfd, &st) < 0) die(what, "stat");
  uint8_t head[12];
  if (pread(rfd, head, sizeof head, 0) != (ssize_t)sizeof head || memcmp(head, CDC_MAGIC, 8)) return "not a chunk recipe";
  uint32_t count = get_u32(head + 8);
  if ((uint64_t)st.st_size != sizeof head + 36ull * count) return "the recipe is cut short";
  blake3_hasher whole;
  blake3_hasher_init(&whole);
  uint64_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint8_t ent[36];
    if (pread(rfd, ent, sizeof ent, (off_t)(sizeof head + 36ull * i)) != (ssize_t)sizeof ent) die(what, "read");
    char rel[68], hex[65];
    chunk_rel(ent, rel);
    hex_into(ent, 32, hex);
    int cfd = openat(chunk_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0) {
      snprintf(why, sizeof why, "chunk %s: %s", hex, strerror(errno));
      memcpy(bad_chunk, hex, sizeof bad_chunk);
      return why;
    }
    const char *w = unpack_as(cfd, out, hex, get_u32(ent + 32), &whole, rel);
    close(cfd);
    if (*w) {
      snprintf(why, sizeof why, "chunk %s: %s", hex, w);
      memcpy(bad_chunk, hex, sizeof bad_chunk);
      return why;
    }
    total += get_u32(ent + 32);
  }
  uint8_t dg[32];
  char hex[65];
  blake3_hasher_finalize(&whole, dg, 32);
  hex_into(dg, 32, hex);
  if (total != o->size || strcmp(hex, o->hash)) {
    snprintf(why, sizeof why, "its chunks put together hash to %s (%" PRIu64 " bytes), not to its name", hex, total);
    return why;
  }
  return "";
}

/* Chunks written by this run into their places (before any recipe naming them) */
void place_new_chunks(void) {
  for (size_t i = 0; i < n_new_chunks; i++) {
    char rel[68];
    chunk_rel(new_chunks[i].dg, rel);
    char dir[3] = {rel[0], rel[1], 0};
    if (mkdirat(chunk_fd, dir, 0755) < 0 && errno != EEXIST) die(dir, "mkdir");
    if (renameat(AT_FDCWD, new_chunks[i].tmp, chunk_fd, rel) < 0) die(rel, "rename");
  }
}

static struct dset live; /* the chunks recipes name */

static int unhex(const char *h, uint8_t out[32]) {
  for (int i = 0; i < 32; i++) {
    unsigned v;
    if (sscanf(h + 2 * i, "%2x", &v) != 1) return 0;
    out[i] = (uint8_t)v;
  }
  return strlen(h) == 64 && strspn(h, "0123456789abcdef") == 64;
}

void sweep_chunks(void) {
  /* every recipe's chunks (gc holds the store: none is written meanwhile) */
  /* every error stops the sweep: a recipe missed would have its chunks removed */
  DIR *top = fdopendir(dup(cas_fd));
  if (!top) die(cas_dir, "opendir");
  struct dirent *a;
  for (;;) {
    errno = 0;
    if (!(a = readdir(top))) {
      if (errno) die(cas_dir, "readdir");
      break;
    }
    if (a->d_name[0] == '.') continue;
    int dfd = openat(cas_fd, a->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0 && (errno == ENOTDIR || errno == ELOOP)) continue; /* not a fan-out dir (fsck names it) */
    if (dfd < 0) die(a->d_name, "open");
    DIR *d = fdopendir(dfd);
    if (!d) die(a->d_name, "opendir");
    struct dirent *e;
    for (;;) {
      errno = 0;
      if (!(e = readdir(d))) {
        if (errno) die(a->d_name, "readdir");
        break;
      }
      size_t l = strlen(e->d_name);
      if (l < 5 || strcmp(e->d_name + l - 4, ".cdc")) continue;
      int r = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (r < 0) die(e->d_name, "open");
      uint8_t head[12], ent[36];
      if (pread(r, head, sizeof head, 0) == (ssize_t)sizeof head && !memcmp(head, CDC_MAGIC, 8))
        for (uint32_t i = 0, n = get_u32(head + 8); i < n; i++) {
          if (pread(r, ent, sizeof ent, (off_t)(sizeof head + 36ull * i)) != (ssize_t)sizeof ent) {
            fprintf(stderr, "velo-cold: %s/%s: damaged: the recipe is cut short; no chunk removed\n", a->d_name, e->d_name);
            exit(1);
          }
          dset_add(&live, ent);
        }
      else {
        /* a recipe that cannot be read keeps every chunk: fsck names it */
        fprintf(stderr, "velo-cold: %s/%s: damaged: not a chunk recipe; no chunk removed\n", a->d_name, e->d_name);
        exit(1);
      }
      close(r);
    }
    closedir(d);
  }
  closedir(top);
  uint64_t swept = 0, swept_bytes = 0, kept = 0, kept_bytes = 0;
  DIR *ct = fdopendir(dup(chunk_fd));
  if (!ct) die(chunk_dir, "opendir");
  while ((a = readdir(ct))) {
    if (a->d_name[0] == '.') continue;
    int dfd = openat(chunk_fd, a->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) continue;
    DIR *d = fdopendir(dfd);
    if (!d) die(a->d_name, "opendir");
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      struct stat st;
      if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
      uint8_t dg[32];
      if (unhex(e->d_name, dg) && dset_has(&live, dg)) {
        kept++, kept_bytes += (uint64_t)st.st_size;
        continue;
      }
      if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) die(e->d_name, "unlink");
      swept++, swept_bytes += (uint64_t)st.st_size;
    }
    closedir(d);
  }
  closedir(ct);
  printf("swept %" PRIu64 " %" PRIu64 "\nkept %" PRIu64 " %" PRIu64 "\n", swept, swept_bytes, kept, kept_bytes);
}

