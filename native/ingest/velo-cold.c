/* velo-cold: cold objects of the store kept zstd-compressed (docs/volumes.md, "Cold objects").
 *
 *   velo-cold freeze|thaw|verify CASDIR TMPDIR ROOT|NOROOT CHUNKDIR PACKDIR   < object names (<h0h1>/<name>), one a line
 *   velo-cold sweep-chunks|packed CASDIR TMPDIR ROOT|NOROOT CHUNKDIR PACKDIR  (no input)
 *   velo-cold compact CASDIR TMPDIR ROOT|NOROOT CHUNKDIR PACKDIR THRESHOLD    < names of objects to drop from packs
 *
 * An object HASH_SIZE_MODE_UID_GID (docs/format.md, "Objects"; none with xattrs: a compressed file could not carry
 * them) is either hot — the plain file CASDIR/<h0h1>/<name>, what farms link and readers open — or cold, in one of
 * three forms with no plain file beside it:
 *   packed      under PACK_OBJ_MAX: in a pack in PACKDIR with other small objects (zstd frames of several objects
 *               each, an index, a trailer: see "Packs" below), where a small file costs a share of a frame, not a
 *               disk block; a pack is rewritten without its dead objects by compact;
 *   <name>.zst  one zstd frame of the same bytes, 0600 (objects from PACK_OBJ_MAX to CDC_MIN_BYTES);
 *   <name>.cdc  a recipe (objects of CDC_MIN_BYTES or more): the object cut by content-defined chunking (FastCDC,
 *               below) into chunks of 16-256 KiB, each stored once in CHUNKDIR/<h0h1>/<BLAKE3 of the chunk> as a zstd
 *               frame, and shared by every recipe that has it: a large file changed in place (a VM image, a
 *               database) costs its changed chunks. Recipe: "VELOCDC1", u32 count, then per chunk its 32-byte
 *               BLAKE3 and u32 length (little-endian); the chunks in order make the object.
 *
 * freeze: each plain object with one link (no farm or checkout shares its inode) is compressed into a temp file in
 *   TMPDIR, which is decompressed again and must hash to the name; one that would not use fewer disk blocks
 *   compressed stays hot. Then one syncfs, every <name>.zst renamed into place, one syncfs, and only then the plain
 *   files unlinked (each still with one link): a kill at any point leaves each object hot, or hot and cold at once
 *   (the next gc drops the redundant .zst), or cold — never neither. Prints "frozen NAME PLAIN_BYTES ZST_BYTES" or
 *   "kept NAME WHY" per name; an object of CDC_MIN_BYTES or more is chunked instead (its new chunks written, each
 *   checked by decompressing it, before the recipe; the whole hashed while it is cut): "chunked NAME PLAIN_BYTES
 *   NEW_BYTES CHUNKS NEW_CHUNKS", NEW_BYTES what its new chunk files and recipe take.
 * thaw: each cold object is decompressed into a temp file while it is hashed; one whose bytes do not hash to its
 *   name fails the run (exit 1, "velo-cold: NAME.zst: damaged: ...") and nothing is linked. The temp files get their
 *   names' mode and owner (ROOT); one syncfs; each is linked into place (EEXIST: hot already); one syncfs; the .zst
 *   files unlinked. Prints "thawed NAME" or "hot NAME" (a plain file was there, or came meanwhile; its .zst is left
 *   for gc).
 * verify: prints "ok NAME", "bad NAME COPY WHY", "hot NAME" (thawed meanwhile: check the plain file) or "unreadable
 *   NAME" (this user may not read it) for each cold object; exit 0 (the caller reports). COPY says which copy is bad,
 *   for a repair to act on without reading WHY (text for people): "zst" (NAME.zst), "cdc" (the recipe NAME.cdc, or
 *   its chunks put together), "chunk:HEX" (that chunk of its recipe), "packed" (every packed copy, or the pack that
 *   cannot be read and may hold it), "name" (not an object name), "open" (its cold copy could not be opened). A
 *   chunked one is put together from its chunks, each checked against its own name, and the whole against the
 *   object's.
 * sweep-chunks: every chunk no recipe in CASDIR names is removed (gc, after its sweep of objects); prints "swept
 *   COUNT BYTES" and "kept COUNT BYTES" (the chunks left, what they take).
 * packed, compact: see list_packed and compact below. freeze puts its small objects into one new pack (more past
 *   PACK_RAW_MAX) — or, for one a pack still holds (a reader made it plain), checks that copy and keeps it — prints
 *   "packed NAME BYTES" for each and "pack HEX BYTES" for each new pack; a small object an older gc froze alone
 *   (<name>.zst) is moved into a pack the same way, its .zst unlinked last; thaw and verify read a
 *   packed object from the first pack (by name) that has it, and thaw prints "absent NAME" for a name with no cold
 *   copy anywhere (a lazy image's object, fetched when read). A thawed object's packed copy stays until compact.
 * Errors: "velo-cold: PATH: what: strerror" on stderr, exit 1. The caller holds the store's lock: exclusive for
 * freeze (gc), shared for thaw (as a writer) and verify (fsck). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include "blake3.h"
#include "records.h"

#define BUF (1u << 20)
#define LEVEL 3 /* zstd -3: 4x faster than -9 here for 15% more bytes (a node_modules tree); gc holds the store meanwhile */
/* FastCDC (Xia et al., USENIX ATC 2016): a gear rolling hash, cut where its masked bits are all zero; a stricter mask
 * before the normal size and a looser one after ("normalized chunking", level 2) keep sizes near the average */
#define CDC_MIN_BYTES (8u << 20) /* smaller cold objects are compressed whole */
#define CHUNK_MIN (16u << 10)
#define CHUNK_AVG (64u << 10)
#define CHUNK_MAX (256u << 10)
#define CDC_MAGIC "VELOCDC1"

static const char *cas_dir, *tmp_dir, *chunk_dir;
static int cas_fd = -1, chunk_fd = -1, as_root;
static unsigned long seq;
static uint8_t *in_buf, *out_buf;

static void die(const char *path, const char *what) {
  int e = errno;
  fprintf(stderr, "velo-cold: %s: %s: %s\n", path, what, strerror(e));
  exit(1);
}
/* cold: NAME.zst or NAME.cdc */
static void damaged(const char *cold, const char *why) {
  fprintf(stderr, "velo-cold: %s: damaged: %s\n", cold, why);
  exit(1);
}

struct oname {
  char hash[65];
  uint64_t size;
  unsigned mode, uid, gid;
};

/* one field of digits in BASE up to '_' or the end (no sign, no space, no overflow); the char after it in *end */
static int field(const char **p, int base, uint64_t max, uint64_t *v) {
  const char *c = *p;
  uint64_t x = 0;
  if (!(*c >= '0' && *c < '0' + (base == 8 ? 8 : 10))) return 0;
  for (; *c >= '0' && *c < '0' + (base == 8 ? 8 : 10); c++) {
    if (x > (max - (uint64_t)(*c - '0')) / (uint64_t)base) return 0;
    x = x * (uint64_t)base + (uint64_t)(*c - '0');
  }
  *v = x, *p = c;
  return 1;
}

/* "ab/<64 hex>_SIZE_MODE_UID_GID" → its parts; 0 when it is not such a name (xattr variants are not) */
static int parse_name(const char *n, struct oname *o) {
  if (strlen(n) < 3 + 64 || n[2] != '/' || strncmp(n, n + 3, 2)) return 0;
  const char *c = n + 3;
  for (int i = 0; i < 64; i++, c++)
    if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
  memcpy(o->hash, n + 3, 64);
  o->hash[64] = 0;
  uint64_t mode, uid, gid;
  if (*c++ != '_' || !field(&c, 10, UINT64_MAX, &o->size) || *c++ != '_' || !field(&c, 8, 07777, &mode) || *c++ != '_' ||
      !field(&c, 10, UINT32_MAX, &uid) || *c++ != '_' || !field(&c, 10, UINT32_MAX, &gid) || *c)
    return 0;
  o->mode = (unsigned)mode, o->uid = (unsigned)uid, o->gid = (unsigned)gid;
  return 1;
}

static void write_all(int fd, const void *p, size_t n, const char *what) {
  const uint8_t *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      die(what, "write");
    }
    c += w, n -= (size_t)w;
  }
}

static int open_temp(char *tmp, size_t cap) {
  snprintf(tmp, cap, "%s/cold-%d-%lu", tmp_dir, (int)getpid(), seq++);
  int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) die(tmp, "create temp file");
  return fd;
}

/* Decompress the frame in fd (from 0) into out (-1: nowhere) while hashing (and into outer, when given); "" when it
 * hashes to hash (hex) and is size bytes long, else why not. */
static const char *unpack_as(int fd, int out, const char *hash, uint64_t size, blake3_hasher *outer, const char *what) {
  static char why[200];
  ZSTD_DCtx *d = ZSTD_createDCtx();
  if (!d) die(what, "zstd context");
  blake3_hasher h;
  blake3_hasher_init(&h);
  uint64_t total = 0, off = 0;
  size_t last = 1;
  for (;;) {
    ssize_t n = pread(fd, in_buf, BUF, (off_t)off);
    if (n < 0) {
      if (errno == EINTR) continue;
      snprintf(why, sizeof why, "read: %s", strerror(errno)); /* a disk error reads as damage: the copy is not usable */
      ZSTD_freeDCtx(d);
      return why;
    }
    if (n == 0) break;
    off += (uint64_t)n;
    ZSTD_inBuffer in = {in_buf, (size_t)n, 0};
    while (in.pos < in.size) {
      ZSTD_outBuffer ob = {out_buf, BUF, 0};
      last = ZSTD_decompressStream(d, &ob, &in);
      if (ZSTD_isError(last)) {
        snprintf(why, sizeof why, "zstd: %s", ZSTD_getErrorName(last));
        ZSTD_freeDCtx(d);
        return why;
      }
      blake3_hasher_update(&h, out_buf, ob.pos);
      if (outer) blake3_hasher_update(outer, out_buf, ob.pos);
      if (out >= 0) write_all(out, out_buf, ob.pos, what);
      total += ob.pos;
    }
  }
  ZSTD_freeDCtx(d);
  if (last != 0) return "the frame is cut short";
  uint8_t dg[32];
  char hex[65];
  blake3_hasher_finalize(&h, dg, 32);
  hex_into(dg, 32, hex);
  if (total != size || strcmp(hex, hash)) {
    snprintf(why, sizeof why, "content hashes to %s (%" PRIu64 " bytes), not to its name", hex, total);
    return why;
  }
  return "";
}

static const char *unpack(int fd, int out, const struct oname *o, const char *what) { return unpack_as(fd, out, o->hash, o->size, NULL, what); }

/* ---- content-defined chunks ---- */

static uint64_t gear[256], mask_s, mask_l;

/* the gear table from splitmix64 with a fixed seed: chunk boundaries (hence sharing) must be the same in every run */
static void cdc_init(void) {
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

static void put_u32(uint8_t *b, uint32_t v) { b[0] = v & 255, b[1] = (v >> 8) & 255, b[2] = (v >> 16) & 255, b[3] = v >> 24; }
static uint32_t get_u32(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }

/* Cut the object in fd into chunks, store the new ones (temp files, see new_chunks) and write its recipe into a temp
 * file; its path in tmp. Returns "" or why the object stays hot (it is not what its name says). */
static const char *chunk_object(int fd, const struct oname *o, const char *name, ZSTD_CCtx *c, char *tmp, size_t cap, uint64_t *new_bytes, uint64_t *chunks, uint64_t *fresh) {
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
static char bad_chunk[65];

/* Put a chunked object together from its recipe (fd) into out (-1: nowhere), each chunk checked against its name;
 * "" when the whole hashes to o, else why not (bad_chunk: the chunk at fault, when one is). */
static const char *unchunk(int rfd, int out, const struct oname *o, const char *what) {
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

/* ---- packs of small cold objects ---- */

/* A pack (docs/format.md, "Packs"): PACKDIR/<BLAKE3 of the file>.pack, zstd frames each holding whole objects one
 * after another (about FRAME_RAW bytes a frame: small files compress together), then an index, one text line per
 * object — "<h0h1>/<name> FRAME_OFFSET FRAME_LENGTH OFFSET_IN_FRAME" — then a trailer: u64 index offset, u64 index
 * length (little-endian), PACK_MAGIC. A pack is written whole into TMPDIR, read back and checked, and renamed into
 * place: it is there whole or not at all. An object in two packs (a compaction cut short) is read from the first by
 * name; the later copy counts as dead. */
#define PACK_OBJ_MAX (64u << 10) /* objects under this go into packs; larger ones are compressed one by one */
#define FRAME_RAW (128u << 10)
#define PACK_RAW_MAX (64u << 20)
#define PACK_MAGIC "VELOPAK1"
#define TRAILER 24
#define NPOS_NONE ((size_t)-1)

static const char *pack_dir;
static int pack_fd = -1;

struct pentry {
  char *name; /* "<h0h1>/<name>" */
  uint64_t size, foff;
  uint32_t flen, ioff, pack;
  size_t next; /* 1 + index of the next copy of the same name (a later pack), 0: none */
  int dup, drop, extra; /* dup: not the first copy; drop: to go; extra: redundant beside a good copy */
};
struct pack {
  char *file;
  uint64_t bytes, raw, dead_raw;
  const char *bad; /* why it cannot be read (whole), or NULL */
  int io_error;    /* bad for an I/O error (EACCES, EIO...: errno in io_error), not for its format */
  int rewrite, salvage; /* salvage: rewritten with what reads back right (fsck --repair of a damaged pack) */
};
static struct pentry *pe;
static size_t npe, cap_pe;
static struct pack *packs;
static size_t npacks;
static size_t *pmap, pmap_cap; /* name → 1 + index into pe (the first pack with it), open addressing */
static int packs_loaded;
static size_t unloaded = NPOS_NONE; /* a pack whose index could not be read (the first), or NPOS_NONE */

static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}
static size_t *pmap_slot(const char *name) {
  size_t i = (size_t)name_hash(name) & (pmap_cap - 1);
  while (pmap[i] && strcmp(pe[pmap[i] - 1].name, name)) i = (i + 1) & (pmap_cap - 1);
  return &pmap[i];
}
static struct pentry *pack_find(const char *name) {
  if (!pmap_cap) return NULL;
  size_t v = *pmap_slot(name);
  return v ? &pe[v - 1] : NULL;
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void put_u64(uint8_t *b, uint64_t v) {
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

/* One pack's index into pe; "" or why it cannot be read. */
static const char *load_pack(uint32_t k) {
  static char why[300];
  int fd = openat(pack_fd, packs[k].file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return packs[k].io_error = errno, snprintf(why, sizeof why, "open: %s", strerror(errno)), why;
  struct stat st;
  uint8_t t[TRAILER];
  if (fstat(fd, &st) < 0) {
    packs[k].io_error = errno;
    close(fd);
    return snprintf(why, sizeof why, "stat: %s", strerror(packs[k].io_error)), why;
  }
  ssize_t tn = st.st_size < TRAILER ? 0 : pread(fd, t, TRAILER, st.st_size - TRAILER);
  if (tn < 0) {
    packs[k].io_error = errno;
    close(fd);
    return snprintf(why, sizeof why, "read: %s", strerror(packs[k].io_error)), why;
  }
  if (tn != TRAILER || memcmp(t + 16, PACK_MAGIC, 8)) {
    close(fd);
    return "no pack trailer";
  }
  uint64_t ioff = get_u64(t), ilen = get_u64(t + 8);
  packs[k].bytes = (uint64_t)st.st_size;
  if (ioff > (uint64_t)st.st_size || ilen != (uint64_t)st.st_size - TRAILER - ioff || ilen > (1ull << 31)) {
    close(fd);
    return "the trailer does not match the file";
  }
  char *idx = malloc(ilen + 1);
  if (!idx) die("-", "malloc");
  ssize_t in = pread(fd, idx, ilen, (off_t)ioff);
  if (in != (ssize_t)ilen) {
    packs[k].io_error = in < 0 ? errno : EIO;
    snprintf(why, sizeof why, "read: %s", in < 0 ? strerror(errno) : "cut short");
    close(fd), free(idx);
    return why;
  }
  close(fd);
  idx[ilen] = 0;
  int bad_lines = 0;
  for (char *line = idx, *nl; *line; line = nl + 1) {
    if (!(nl = strchr(line, '\n'))) break;
    *nl = 0;
    char name[4200];
    unsigned long long foff, flen, io;
    struct oname o;
    /* every bound checked without overflow: an object under PACK_OBJ_MAX starting in the frame's first FRAME_RAW
     * bytes (pw_add flushes a frame once it reaches FRAME_RAW), a frame inside the data before the index */
    if (sscanf(line, "%4199s %llu %llu %llu", name, &foff, &flen, &io) != 4 || !parse_name(name, &o) || o.size == 0 || o.size >= PACK_OBJ_MAX ||
        io >= FRAME_RAW || foff > ioff || flen > ioff - foff || flen > BUF) {
      bad_lines++; /* the other lines still serve their objects (checked when read); fsck names the pack */
      continue;
    }
    if (npe == cap_pe && !(pe = realloc(pe, (cap_pe = cap_pe ? 2 * cap_pe : 4096) * sizeof *pe))) die("-", "malloc");
    pe[npe] = (struct pentry){strdup(name), o.size, foff, (uint32_t)flen, (uint32_t)io, k, 0, 0, 0, 0};
    if (!pe[npe].name) die("-", "malloc");
    packs[k].raw += o.size;
    npe++;
  }
  free(idx);
  if (bad_lines) return snprintf(why, sizeof why, "%d bad index line(s)", bad_lines), why;
  return "";
}

/* Every pack's index (once a run), in the order of their names: the first pack naming an object serves it. */
static void load_packs(void) {
  if (packs_loaded++ || pack_fd < 0) return;
  DIR *d = fdopendir(dup(pack_fd));
  if (!d) die(pack_dir, "opendir");
  char **files = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  for (;;) {
    errno = 0;
    if (!(e = readdir(d))) {
      if (errno) die(pack_dir, "readdir");
      break;
    }
    size_t l = strlen(e->d_name);
    if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".pack")) continue;
    if (n == cap && !(files = realloc(files, (cap = cap ? 2 * cap : 64) * sizeof *files))) die("-", "malloc");
    if (!(files[n++] = strdup(e->d_name))) die("-", "malloc");
  }
  closedir(d);
  qsort(files, n, sizeof *files, cmp_str);
  if (!(packs = calloc(n ? n : 1, sizeof *packs))) die("-", "malloc");
  for (size_t k = 0; k < n; k++) {
    packs[k].file = files[k];
    const char *why = load_pack((uint32_t)k);
    if (*why && !(packs[k].bad = strdup(why))) die("-", "malloc");
    if (*why && unloaded == NPOS_NONE) unloaded = k;
  }
  npacks = n;
  free(files);
  for (pmap_cap = 1024; pmap_cap < 2 * npe + 2; pmap_cap *= 2) {
  }
  if (!(pmap = calloc(pmap_cap, sizeof *pmap))) die("-", "malloc");
  for (size_t i = 0; i < npe; i++) {
    size_t *s = pmap_slot(pe[i].name);
    if (!*s) {
      *s = i + 1;
      continue;
    }
    pe[i].dup = 1; /* a later copy: chained after the others, in the order of the packs */
    size_t j = *s - 1;
    while (pe[j].next) j = pe[j].next - 1;
    pe[j].next = i + 1;
  }
}

static const char *unpack_packed(const struct pentry *e, int out, const struct oname *o);
static int plain_now(const char *name);

/* The first copy of name that reads back right (into out, -1: nowhere); NULL and *why (the first copy's problem)
 * when none does. */
static const struct pentry *packed_read(const struct pentry *e, int out, const struct oname *o, const char **why) {
  *why = "";
  for (; e; e = e->next ? &pe[e->next - 1] : NULL) {
    const char *w = unpack_packed(e, out, o);
    if (!*w) return *why = "", e;
    if (!**why) {
      static char first[400];
      snprintf(first, sizeof first, "%s", w);
      *why = first;
    }
  }
  return NULL;
}

/* The frame of e decompressed into fbuf (the last one is kept: a thaw takes neighbours in turn); "" or why not. */
static uint8_t *fbuf;
static size_t fraw;
static const char *load_frame(const struct pentry *e) {
  static char why[300];
  static uint32_t cpack = UINT32_MAX;
  static uint64_t cfoff;
  if (cpack == e->pack && cfoff == e->foff) return "";
  cpack = UINT32_MAX;
  if (!fbuf && !(fbuf = malloc(FRAME_RAW + PACK_OBJ_MAX))) die("-", "malloc");
  int fd = openat(pack_fd, packs[e->pack].file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return snprintf(why, sizeof why, "pack %s: open: %s", packs[e->pack].file, strerror(errno)), why;
  ssize_t n = pread(fd, in_buf, e->flen, (off_t)e->foff);
  int err = errno;
  close(fd);
  if (n != (ssize_t)e->flen) return snprintf(why, sizeof why, "pack %s: read: %s", packs[e->pack].file, n < 0 ? strerror(err) : "cut short"), why;
  size_t r = ZSTD_decompress(fbuf, FRAME_RAW + PACK_OBJ_MAX, in_buf, e->flen);
  if (ZSTD_isError(r)) return snprintf(why, sizeof why, "pack %s: zstd: %s", packs[e->pack].file, ZSTD_getErrorName(r)), why;
  fraw = r, cpack = e->pack, cfoff = e->foff;
  return "";
}

/* A packed object into out (-1: nowhere), checked against its name; "" or why not. */
static const char *unpack_packed(const struct pentry *e, int out, const struct oname *o) {
  static char why[400];
  const char *w = load_frame(e);
  if (*w) return w;
  if ((uint64_t)e->ioff + o->size > fraw) return snprintf(why, sizeof why, "pack %s: the frame is shorter than its index says", packs[e->pack].file), why;
  uint8_t dg[32];
  char hex[65];
  blake3_hasher h;
  blake3_hasher_init(&h);
  blake3_hasher_update(&h, fbuf + e->ioff, o->size);
  blake3_hasher_finalize(&h, dg, 32);
  hex_into(dg, 32, hex);
  if (strcmp(hex, o->hash)) return snprintf(why, sizeof why, "pack %s: content hashes to %s, not to its name", packs[e->pack].file, hex), why;
  if (out >= 0) write_all(out, fbuf + e->ioff, o->size, "temp file");
  return "";
}

/* The pack being written: frames into a temp file, its entries' index lines kept until it is finished. */
struct pw_entry {
  char *name;
  uint64_t size, foff;
  uint32_t flen, ioff;
};
static struct {
  int fd;
  char tmp[4200];
  blake3_hasher h;
  uint8_t *fb, *rb; /* the frame being filled; a frame read back */
  size_t fl;
  uint64_t off, raw;
  struct pw_entry *e;
  size_t n, cap, frame_first;
} pw = {.fd = -1};
struct done_pack {
  char *tmp, hex[65];
};
static struct done_pack *done_packs;
static size_t n_done_packs;

static void pw_flush(ZSTD_CCtx *c) {
  if (!pw.fl) return;
  ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
  size_t z = ZSTD_compress2(c, out_buf, BUF, pw.fb, pw.fl);
  if (ZSTD_isError(z)) {
    errno = EIO;
    die(pw.tmp, ZSTD_getErrorName(z));
  }
  write_all(pw.fd, out_buf, z, pw.tmp);
  blake3_hasher_update(&pw.h, out_buf, z);
  for (size_t i = pw.frame_first; i < pw.n; i++) pw.e[i].foff = pw.off, pw.e[i].flen = (uint32_t)z;
  pw.off += z, pw.fl = 0, pw.frame_first = pw.n;
}

/* The pack finished: its index and trailer written, every object read back and checked; kept for placing. */
static void pw_finish(ZSTD_CCtx *c) {
  if (pw.fd < 0) return;
  pw_flush(c);
  uint64_t ioff = pw.off, ilen = 0;
  char line[4300];
  for (size_t i = 0; i < pw.n; i++) {
    int l = snprintf(line, sizeof line, "%s %" PRIu64 " %" PRIu32 " %" PRIu32 "\n", pw.e[i].name, pw.e[i].foff, pw.e[i].flen, pw.e[i].ioff);
    write_all(pw.fd, line, (size_t)l, pw.tmp);
    blake3_hasher_update(&pw.h, line, (size_t)l);
    ilen += (uint64_t)l;
  }
  uint8_t t[TRAILER];
  put_u64(t, ioff), put_u64(t + 8, ilen), memcpy(t + 16, PACK_MAGIC, 8);
  write_all(pw.fd, t, TRAILER, pw.tmp);
  blake3_hasher_update(&pw.h, t, TRAILER);
  /* read back: each frame decompressed, each object hashed against its name */
  size_t rlen = 0;
  for (size_t i = 0; i < pw.n; i++) {
    if (i == 0 || pw.e[i].foff != pw.e[i - 1].foff) {
      if (pread(pw.fd, in_buf, pw.e[i].flen, (off_t)pw.e[i].foff) != (ssize_t)pw.e[i].flen) die(pw.tmp, "read back");
      size_t r = ZSTD_decompress(pw.rb, FRAME_RAW + PACK_OBJ_MAX, in_buf, pw.e[i].flen);
      if (ZSTD_isError(r)) {
        errno = EIO;
        die(pw.tmp, ZSTD_getErrorName(r));
      }
      rlen = r;
    }
    struct oname o;
    uint8_t dg[32];
    char hex[65];
    parse_name(pw.e[i].name, &o);
    blake3_hasher h;
    blake3_hasher_init(&h);
    if ((uint64_t)pw.e[i].ioff + o.size > rlen) damaged(pw.tmp, "a frame read back is short");
    blake3_hasher_update(&h, pw.rb + pw.e[i].ioff, o.size);
    blake3_hasher_finalize(&h, dg, 32);
    hex_into(dg, 32, hex);
    if (strcmp(hex, o.hash)) damaged(pw.tmp, "an object read back does not hash to its name");
  }
  if (close(pw.fd) < 0) die(pw.tmp, "close");
  pw.fd = -1;
  uint8_t dg[32];
  blake3_hasher_finalize(&pw.h, dg, 32);
  if (!(done_packs = realloc(done_packs, (n_done_packs + 1) * sizeof *done_packs))) die("-", "malloc");
  hex_into(dg, 32, done_packs[n_done_packs].hex);
  if (!(done_packs[n_done_packs++].tmp = strdup(pw.tmp))) die("-", "malloc");
  for (size_t i = 0; i < pw.n; i++) free(pw.e[i].name);
  pw.n = 0, pw.off = 0, pw.raw = 0, pw.frame_first = 0;
}

/* Add an object's bytes (already checked against its name) to the pack being written. */
static void pw_add(ZSTD_CCtx *c, const char *name, const uint8_t *p, uint64_t size) {
  if (pw.fd < 0) {
    pw.fd = open_temp(pw.tmp, sizeof pw.tmp);
    blake3_hasher_init(&pw.h);
    if (!pw.fb && (!(pw.fb = malloc(FRAME_RAW + PACK_OBJ_MAX)) || !(pw.rb = malloc(FRAME_RAW + PACK_OBJ_MAX)))) die("-", "malloc");
  }
  if (pw.n == pw.cap && !(pw.e = realloc(pw.e, (pw.cap = pw.cap ? 2 * pw.cap : 1024) * sizeof *pw.e))) die("-", "malloc");
  pw.e[pw.n] = (struct pw_entry){strdup(name), size, 0, 0, (uint32_t)pw.fl};
  if (!pw.e[pw.n++].name) die("-", "malloc");
  memcpy(pw.fb + pw.fl, p, size);
  pw.fl += size, pw.raw += size;
  if (pw.fl >= FRAME_RAW) pw_flush(c);
  if (pw.raw >= PACK_RAW_MAX) pw_finish(c);
}

/* The packs this run wrote into place (after a syncfs; the caller syncs again before anything depends on them). */
static void place_done_packs(void) {
  for (size_t i = 0; i < n_done_packs; i++) {
    char dst[80];
    snprintf(dst, sizeof dst, "%s.pack", done_packs[i].hex);
    if (renameat(AT_FDCWD, done_packs[i].tmp, pack_fd, dst) < 0) die(dst, "rename");
  }
}

/* A small object read whole into buf (PACK_OBJ_MAX bytes) and hashed: 1 when it is what its name says. */
static int read_small(int fd, const struct oname *o, uint8_t *buf, const char *name) {
  uint64_t got = 0;
  for (;;) {
    ssize_t n = pread(fd, buf + got, PACK_OBJ_MAX - got, (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die(name, "read");
    if (n == 0 || (got += (uint64_t)n) >= PACK_OBJ_MAX) break;
  }
  if (got != o->size) return 0;
  uint8_t dg[32];
  char hex[65];
  blake3_hasher h;
  blake3_hasher_init(&h);
  blake3_hasher_update(&h, buf, got);
  blake3_hasher_finalize(&h, dg, 32);
  hex_into(dg, 32, hex);
  return !strcmp(hex, o->hash);
}

/* A small object (o) packed: kept where a pack already holds a copy that reads back right (a reader made it plain,
 * its pack not rewritten since), else its bytes (read from fd, from 0, and hashed) added to the pack being written —
 * behind any damaged copies, which readers pass and compact drops. 0 when the bytes are not what the name says. */
static int pack_small(ZSTD_CCtx *c, const char *name, const struct oname *o, int fd) {
  static uint8_t small[PACK_OBJ_MAX];
  const char *why;
  load_packs();
  const struct pentry *had = pack_find(name);
  if (had && packed_read(had, -1, o, &why)) return 1;
  if (!read_small(fd, o, small, name)) return 0;
  pw_add(c, name, small, o->size);
  return 1;
}

/* The names to drop from packs, as read from stdin: "NAME" drops every copy, "NAME bad" only the copies that do not
 * read back right (fsck --repair: a good copy stays) */
static char **drop_names;
static size_t n_drop;

/* compact: drop what stdin names; of the other names with several copies, every copy but the first that reads back
 * right is redundant ("extra"). Every pack whose dead share (dropped and redundant copies) is THRESHOLD or more of its
 * raw bytes is rewritten with its live objects (all such packs into new ones together, each object checked on the
 * way: a pack with a damaged live object is left as it is and named), then removed. Prints "compacted REWRITTEN
 * REMOVED MOVED DROPPED DROPPED_BYTES BYTES_BEFORE BYTES_AFTER", "dropped NAME" for each name no pack holds any more
 * (DROPPED counts those), and "damaged PACK NAME WHY". */
static void compact(double threshold) {
  load_packs();
  for (size_t i = 0; i < n_drop; i++) {
    if (!strncmp(drop_names[i], "pack:", 5)) { /* "pack:FILE": rewrite that pack with whatever of it reads back right */
      for (size_t k = 0; k < npacks; k++)
        if (!strcmp(packs[k].file, drop_names[i] + 5)) packs[k].salvage = !packs[k].io_error;
      continue;
    }
    char *sp = strchr(drop_names[i], ' ');
    if (sp && strcmp(sp, " bad")) {
      errno = EINVAL;
      die(drop_names[i], "not a name to drop (NAME, NAME bad or pack:FILE)");
    }
    int only_bad = sp != NULL;
    if (sp) *sp = 0;
    struct pentry *e = pack_find(drop_names[i]);
    struct oname o;
    if (!e || !parse_name(drop_names[i], &o)) continue;
    for (; e; e = e->next ? &pe[e->next - 1] : NULL) e->drop = !only_bad || *unpack_packed(e, -1, &o);
  }
  /* several copies of a name kept: the first that reads back right stays, the others are redundant; none right:
   * all stay (fsck names them) */
  for (size_t i = 0; i < npe; i++) {
    if (pe[i].dup || !pe[i].next) continue;
    struct oname o;
    parse_name(pe[i].name, &o);
    const struct pentry *good = NULL;
    for (struct pentry *e = &pe[i]; e && !good; e = e->next ? &pe[e->next - 1] : NULL)
      if (!e->drop && !*unpack_packed(e, -1, &o)) good = e;
    if (good)
      for (struct pentry *e = &pe[i]; e; e = e->next ? &pe[e->next - 1] : NULL) e->extra = !e->drop && e != good;
  }
  for (size_t i = 0; i < npe; i++)
    if (pe[i].drop || pe[i].extra) packs[pe[i].pack].dead_raw += pe[i].size;
  for (size_t k = 0; k < npacks; k++)
    packs[k].rewrite = packs[k].salvage || (!packs[k].bad && packs[k].dead_raw > 0 && (double)packs[k].dead_raw >= threshold * (double)packs[k].raw);
  /* check every live object of the packs to rewrite first: a damaged one keeps its pack */
  ZSTD_CCtx *c = ZSTD_createCCtx();
  if (!c) die("-", "malloc");
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, LEVEL);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  for (size_t i = 0; i < npe; i++) {
    if (!packs[pe[i].pack].rewrite || pe[i].drop || pe[i].extra) continue;
    struct oname o;
    parse_name(pe[i].name, &o);
    const char *why = unpack_packed(&pe[i], -1, &o);
    if (*why && packs[pe[i].pack].salvage) pe[i].drop = 1; /* salvaged: what does not read back right stays behind */
    else if (*why) {
      printf("damaged %s %s %s\n", packs[pe[i].pack].file, pe[i].name, why);
      packs[pe[i].pack].rewrite = 0;
    }
  }
  uint64_t rewritten = 0, removed = 0, moved = 0, dropped = 0, dropped_bytes = 0, before = 0, after = 0;
  for (size_t i = 0; i < npe; i++) {
    if (!packs[pe[i].pack].rewrite || pe[i].drop || pe[i].extra) continue;
    struct oname o;
    parse_name(pe[i].name, &o);
    const char *why = load_frame(&pe[i]); /* checked above */
    if (*why) damaged(packs[pe[i].pack].file, why);
    pw_add(c, pe[i].name, fbuf + pe[i].ioff, o.size);
    moved++;
  }
  /* a name is gone when every copy of it is dropped from a pack being rewritten */
  for (size_t i = 0; i < npe; i++) {
    if (pe[i].dup) continue;
    int gone = 1;
    for (const struct pentry *e = &pe[i]; e && gone; e = e->next ? &pe[e->next - 1] : NULL) gone = e->drop && packs[e->pack].rewrite;
    if (gone) dropped++, dropped_bytes += pe[i].size, printf("dropped %s\n", pe[i].name);
  }
  pw_finish(c);
  ZSTD_freeCCtx(c);
  for (size_t k = 0; k < npacks; k++)
    if (packs[k].rewrite) rewritten++, before += packs[k].bytes;
  /* new packs durable and in place before an old one goes: a kill in between leaves objects in two packs */
  if (syncfs(cas_fd) < 0) die(cas_dir, "syncfs");
  place_done_packs();
  if (syncfs(cas_fd) < 0) die(cas_dir, "syncfs");
  for (size_t i = 0; i < n_done_packs; i++) {
    struct stat st;
    char f[80];
    snprintf(f, sizeof f, "%s.pack", done_packs[i].hex);
    if (fstatat(pack_fd, f, &st, 0) == 0) after += (uint64_t)st.st_size;
  }
  for (size_t k = 0; k < npacks; k++)
    if (packs[k].rewrite) {
      int again = 0; /* a pack rewritten to the very same bytes (nothing dropped) has the same name */
      for (size_t i = 0; i < n_done_packs; i++) again |= !strncmp(packs[k].file, done_packs[i].hex, 64);
      if (!again && unlinkat(pack_fd, packs[k].file, 0) < 0 && errno != ENOENT) die(packs[k].file, "unlink");
      removed++;
    }
  printf("compacted %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", rewritten, removed, moved, dropped, dropped_bytes, before, after);
}

/* packed: every packed object, once ("packed NAME PACK STORED_SHARE"), every pack ("pack PACK BYTES RAW OBJECTS"),
 * and every pack whose index cannot be read: "damaged PACK WHY" (its format), "unreadable PACK WHY" (an I/O error or
 * a permission: the pack may be whole). */
static void list_packed(void) {
  load_packs();
  uint64_t *count = calloc(npacks ? npacks : 1, sizeof *count);
  if (!count) die("-", "malloc");
  for (size_t i = 0; i < npe; i++) {
    count[pe[i].pack]++;
    if (pe[i].dup) continue;
    const struct pack *k = &packs[pe[i].pack];
    printf("packed %s %s %" PRIu64 "\n", pe[i].name, k->file, k->raw ? (uint64_t)((double)k->bytes * (double)pe[i].size / (double)k->raw) : 0);
  }
  for (size_t k = 0; k < npacks; k++)
    if (packs[k].bad) printf("%s %s %s\n", packs[k].io_error ? "unreadable" : "damaged", packs[k].file, packs[k].bad);
    else printf("pack %s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", packs[k].file, packs[k].bytes, packs[k].raw, count[k]);
  free(count);
}

/* The cold copy of name: its .zst (*cdc = 0) or its .cdc (*cdc = 1), opened; -1 with errno when neither is there. */
static int open_cold(const char *name, int *cdc) {
  char p[4200];
  snprintf(p, sizeof p, "%s.zst", name);
  int fd = openat(cas_fd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  *cdc = 0;
  if (fd >= 0 || errno != ENOENT) return fd;
  snprintf(p, sizeof p, "%s.cdc", name);
  *cdc = 1;
  return openat(cas_fd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

/* The cold object name (o: its parts) read into out (-1: nowhere) and checked, from its .zst, its .cdc or a pack:
 * 1 with *why "" or what is wrong (*form: 0 .zst, 1 .cdc, 2 packed; what: the copy read, for messages); 0 when it has
 * no cold copy (errno ENOENT), -1 when one cannot be opened (errno). */
static int read_cold(const char *name, const struct oname *o, int out, const char **why, int *form, char *what, size_t wcap) {
  int z = open_cold(name, form);
  snprintf(what, wcap, "%s.%s", name, *form ? "cdc" : "zst");
  if (z >= 0) {
    *why = *form ? unchunk(z, out, o, what) : unpack(z, out, o, what);
    close(z);
    return 1;
  }
  if (errno != ENOENT) return -1;
  load_packs();
  const struct pentry *e = pack_find(name);
  if (!e && unloaded != NPOS_NONE && plain_now(name)) return errno = ENOENT, 0; /* made plain meanwhile */
  if (!e && unloaded != NPOS_NONE) {
    /* fail closed: the object may be in the pack that cannot be read */
    const struct pack *k = &packs[unloaded];
    snprintf(what, wcap, "%s (pack %s)", name, k->file);
    if (k->io_error == EACCES || k->io_error == EPERM) return errno = k->io_error, -1;
    static char w[400];
    snprintf(w, sizeof w, "in no pack that can be read; pack %s: %s", k->file, k->bad);
    *form = 2, *why = w;
    return 1;
  }
  if (!e) return errno = ENOENT, 0;
  *form = 2;
  snprintf(what, wcap, "%s (pack %s)", name, packs[e->pack].file);
  packed_read(e, out, o, why);
  return 1;
}

struct pending {
  char *name, *tmp;
  int cdc; /* its cold copy: 0 a frame (.zst), 1 a recipe (.cdc), 2 in a pack, 3 in a pack and its .zst to go */
};

/* Chunks written by this run into their places (before any recipe naming them) */
static void place_new_chunks(void) {
  for (size_t i = 0; i < n_new_chunks; i++) {
    char rel[68];
    chunk_rel(new_chunks[i].dg, rel);
    char dir[3] = {rel[0], rel[1], 0};
    if (mkdirat(chunk_fd, dir, 0755) < 0 && errno != EEXIST) die(dir, "mkdir");
    if (renameat(AT_FDCWD, new_chunks[i].tmp, chunk_fd, rel) < 0) die(rel, "rename");
  }
}

static void freeze(char **names, size_t n) {
  struct pending *p = calloc(n ? n : 1, sizeof *p);
  size_t np = 0;
  ZSTD_CCtx *c = ZSTD_createCCtx();
  if (!p || !c) die("-", "malloc");
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, LEVEL);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  for (size_t i = 0; i < n; i++) {
    struct oname o;
    if (!parse_name(names[i], &o)) {
      printf("kept %s not-a-plain-object-name\n", names[i]);
      continue;
    }
    int fd = openat(cas_fd, names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && o.size > 0 && o.size < PACK_OBJ_MAX) {
      /* a small object frozen alone before packs existed (<name>.zst): moved into a pack, checked on the way */
      char zname[4200];
      snprintf(zname, sizeof zname, "%s.zst", names[i]);
      int z = openat(cas_fd, zname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (z >= 0) {
        char tmp[4200];
        int t = open_temp(tmp, sizeof tmp);
        int same = !*unpack(z, t, &o, zname) && pack_small(c, names[i], &o, t);
        close(t);
        unlink(tmp);
        close(z);
        if (!same) { /* a damaged .zst stays as it is: fsck names it */
          printf("kept %s unreadable-copy\n", names[i]);
          continue;
        }
        p[np].name = names[i];
        p[np++].cdc = 3;
        printf("packed %s %" PRIu64 "\n", names[i], o.size);
        continue;
      }
      errno = ENOENT;
    }
    if (fd < 0) {
      if (errno == ENOENT) {
        printf("kept %s absent\n", names[i]);
        continue;
      }
      die(names[i], "open");
    }
    struct stat st;
    if (fstat(fd, &st) < 0) die(names[i], "stat");
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || (uint64_t)st.st_size != o.size) {
      printf("kept %s %s\n", names[i], st.st_nlink != 1 ? "linked" : "not-as-named");
      close(fd);
      continue;
    }
    if (o.size == 0) { /* nothing to store: an empty object costs no block */
      printf("kept %s empty\n", names[i]);
      close(fd);
      continue;
    }
    if (o.size < PACK_OBJ_MAX) {
      int same = pack_small(c, names[i], &o, fd);
      close(fd);
      if (!same) {
        printf("kept %s changed\n", names[i]);
        continue;
      }
      p[np].name = names[i];
      p[np++].cdc = 2;
      printf("packed %s %" PRIu64 "\n", names[i], o.size);
      continue;
    }
    if (o.size >= CDC_MIN_BYTES) {
      char rtmp[4200];
      uint64_t nb, nch, fresh;
      const char *why = chunk_object(fd, &o, names[i], c, rtmp, sizeof rtmp, &nb, &nch, &fresh);
      close(fd);
      if (*why) {
        printf("kept %s %s\n", names[i], why);
        continue;
      }
      p[np].name = names[i];
      p[np].cdc = 1;
      if (!(p[np++].tmp = strdup(rtmp))) die("-", "malloc");
      printf("chunked %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", names[i], o.size, nb, nch, fresh);
      continue;
    }
    char tmp[4200];
    int t = open_temp(tmp, sizeof tmp);
    ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
    ZSTD_CCtx_setPledgedSrcSize(c, o.size);
    uint64_t off = 0;
    for (;;) {
      ssize_t r = pread(fd, in_buf, BUF, (off_t)off);
      if (r < 0) {
        if (errno == EINTR) continue;
        die(names[i], "read");
      }
      off += (uint64_t)(r > 0 ? r : 0);
      ZSTD_EndDirective mode = r == 0 ? ZSTD_e_end : ZSTD_e_continue;
      ZSTD_inBuffer in = {in_buf, (size_t)r, 0};
      size_t left;
      do {
        ZSTD_outBuffer ob = {out_buf, BUF, 0};
        left = ZSTD_compressStream2(c, &ob, &in, mode);
        if (ZSTD_isError(left)) break; /* e.g. more or fewer bytes than its size: said below */
        write_all(t, out_buf, ob.pos, tmp);
      } while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
      if (ZSTD_isError(left)) {
        off = UINT64_MAX;
        break;
      }
      if (r == 0) break;
    }
    close(fd);
    struct stat zs;
    if (fstat(t, &zs) < 0) die(tmp, "stat");
    /* what the disk holds, not the byte counts: a small object saves nothing */
    if (off != o.size || zs.st_blocks >= st.st_blocks) {
      printf("kept %s %s\n", names[i], off != o.size ? "changed" : "no-gain");
      close(t);
      unlink(tmp);
      continue;
    }
    const char *why = unpack(t, -1, &o, tmp);
    if (*why) {
      /* the plain object itself is not what its name says (fsck names it): it stays as it is */
      printf("kept %s unreadable-copy\n", names[i]);
      close(t);
      unlink(tmp);
      continue;
    }
    close(t);
    p[np].name = names[i];
    p[np].tmp = strdup(tmp);
    if (!p[np].tmp) die("-", "malloc");
    printf("frozen %s %" PRIu64 " %" PRIu64 "\n", names[i], o.size, (uint64_t)zs.st_size);
    np++;
  }
  pw_finish(c);
  ZSTD_freeCCtx(c);
  for (size_t i = 0; i < n_done_packs; i++) {
    struct stat st;
    if (stat(done_packs[i].tmp, &st) < 0) die(done_packs[i].tmp, "stat");
    printf("pack %s %" PRIu64 "\n", done_packs[i].hex, (uint64_t)st.st_size);
  }
  if (syncfs(cas_fd) < 0) die(cas_dir, "syncfs");
  place_new_chunks();
  place_done_packs();
  for (size_t i = 0; i < np; i++) {
    char dst[4200];
    if (p[i].cdc >= 2) continue;
    snprintf(dst, sizeof dst, "%s.%s", p[i].name, p[i].cdc ? "cdc" : "zst");
    if (renameat(AT_FDCWD, p[i].tmp, cas_fd, dst) < 0) die(dst, "rename");
  }
  if (syncfs(cas_fd) < 0) die(cas_dir, "syncfs");
  for (size_t i = 0; i < np; i++) {
    struct stat st;
    if (p[i].cdc == 3) { /* moved into a pack (in place and synced above): its .zst goes */
      char zname[4200];
      snprintf(zname, sizeof zname, "%s.zst", p[i].name);
      if (unlinkat(cas_fd, zname, 0) < 0 && errno != ENOENT) die(zname, "unlink");
      continue;
    }
    /* a link made since (none should be: gc holds the store) keeps it hot; its .zst goes at the next gc */
    if (fstatat(cas_fd, p[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_nlink == 1 && unlinkat(cas_fd, p[i].name, 0) < 0) die(p[i].name, "unlink");
  }
}

/* ENOENT on NAME.zst: another thaw made it plain meanwhile (1), or it is gone (0) */
static int plain_now(const char *name) {
  struct stat st;
  return fstatat(cas_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void thaw(char **names, size_t n) {
  struct pending *p = calloc(n ? n : 1, sizeof *p);
  size_t np = 0;
  if (!p) die("-", "malloc");
  /* 1: each decompressed into a temp file, checked against its name, given its mode and owner */
  for (size_t i = 0; i < n; i++) {
    struct oname o;
    if (!parse_name(names[i], &o)) {
      errno = EINVAL;
      die(names[i], "not an object name");
    }
    if (plain_now(names[i])) {
      printf("hot %s\n", names[i]);
      continue;
    }
    char zname[4200], tmp[4200];
    int cdc;
    const char *why;
    int t = open_temp(tmp, sizeof tmp);
    int found = read_cold(names[i], &o, t, &why, &cdc, zname, sizeof zname);
    if (found <= 0) {
      int e = errno;
      close(t);
      unlink(tmp);
      errno = e;
      if (found < 0) die(zname, "open");
      /* no cold copy: made plain meanwhile, or not in this store at all (a lazy image's, fetched on read) */
      printf("%s %s\n", plain_now(names[i]) ? "hot" : "absent", names[i]);
      continue;
    }
    if (*why) {
      close(t);
      unlink(tmp);
      for (size_t j = 0; j < np; j++) unlink(p[j].tmp);
      damaged(zname, why);
    }
    /* chown before chmod: chown clears setuid/setgid */
    if (as_root && (o.uid != geteuid() || o.gid != getegid()) && fchown(t, o.uid, o.gid) < 0) die(tmp, "chown");
    if (fchmod(t, o.mode & 07777) < 0) die(tmp, "chmod");
    if (close(t) < 0) die(tmp, "close");
    p[np].name = names[i];
    p[np].cdc = cdc;
    if (!(p[np++].tmp = strdup(tmp))) die("-", "malloc");
  }
  /* 2: their bytes on disk before any gets its name (a plain file is never seen short after a power loss), the names
   * on disk before the compressed copies go */
  if (syncfs(cas_fd) < 0) die(cas_dir, "syncfs");
  for (size_t i = 0; i < np; i++) {
    if (linkat(AT_FDCWD, p[i].tmp, cas_fd, p[i].name, 0) < 0 && errno != EEXIST) die(p[i].name, "link");
    unlink(p[i].tmp);
    printf("thawed %s\n", p[i].name);
  }
  if (syncfs(cas_fd) < 0) die(cas_dir, "syncfs");
  /* a recipe goes, its chunks stay (gc's sweep-chunks removes those no recipe names) */
  for (size_t i = 0; i < np; i++) {
    char zname[4200];
    if (p[i].cdc == 2) continue; /* a pack keeps its copy until gc's compaction drops it */
    snprintf(zname, sizeof zname, "%s.%s", p[i].name, p[i].cdc ? "cdc" : "zst");
    if (unlinkat(cas_fd, zname, 0) < 0 && errno != ENOENT) die(zname, "unlink");
  }
}

static void verify(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct oname o;
    if (!parse_name(names[i], &o)) {
      printf("bad %s name not an object name\n", names[i]);
      continue;
    }
    char zname[4200];
    int form;
    const char *why;
    if (read_cold(names[i], &o, -1, &why, &form, zname, sizeof zname) <= 0) {
      /* thawed meanwhile (a checkout): the plain file is the object now; one this user may not read is not checked */
      if (errno == ENOENT && plain_now(names[i])) printf("hot %s\n", names[i]);
      else if (errno == EACCES || errno == EPERM) printf("unreadable %s\n", names[i]);
      else printf("bad %s open %s\n", names[i], strerror(errno));
      continue;
    }
    if (!*why) {
      printf("ok %s\n", names[i]);
      continue;
    }
    if (form == 1 && bad_chunk[0]) printf("bad %s chunk:%s %s\n", names[i], bad_chunk, why);
    else printf("bad %s %s %s\n", names[i], form == 0 ? "zst" : form == 1 ? "cdc" : "packed", why);
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

static void sweep_chunks(void) {
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

int main(int argc, char **argv) {
  const char *verb = argc > 1 ? argv[1] : "";
  int known = !strcmp(verb, "freeze") || !strcmp(verb, "thaw") || !strcmp(verb, "verify") || !strcmp(verb, "sweep-chunks") || !strcmp(verb, "packed");
  double threshold = -1;
  if (!strcmp(verb, "compact") && argc == 8) threshold = strtod(argv[7], NULL);
  if (!(known && argc == 7) && !(threshold >= 0 && threshold <= 1)) {
    fprintf(stderr, "usage: velo-cold freeze|thaw|verify|sweep-chunks|packed CASDIR TMPDIR ROOT|NOROOT CHUNKDIR PACKDIR < object names\n"
                    "       velo-cold compact CASDIR TMPDIR ROOT|NOROOT CHUNKDIR PACKDIR THRESHOLD < names to drop\n");
    return 2;
  }
  /* the caller's store lock is its own fd: a freeze or thaw must not outlive it (a gc killed with -9) */
  const char *caller = getenv("VELO_COLD_PARENT"); /* the caller's pid: gone already, and this is an orphan */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || (caller && getppid() != (pid_t)atol(caller))) return 1;
  cas_dir = argv[2], tmp_dir = argv[3], as_root = strcmp(argv[4], "ROOT") == 0, chunk_dir = argv[5];
  cas_fd = open(cas_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cas_fd < 0) die(cas_dir, "open");
  pack_dir = argv[6];
  if (!strcmp(argv[1], "freeze") && mkdir(chunk_dir, 0755) < 0 && errno != EEXIST) die(chunk_dir, "mkdir");
  if ((!strcmp(argv[1], "freeze") || !strcmp(argv[1], "compact")) && mkdir(pack_dir, 0755) < 0 && errno != EEXIST) die(pack_dir, "mkdir");
  chunk_fd = open(chunk_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (chunk_fd < 0 && errno != ENOENT) die(chunk_dir, "open");
  pack_fd = open(pack_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pack_fd < 0 && errno != ENOENT) die(pack_dir, "open");
  cdc_init();
  if (!strcmp(argv[1], "sweep-chunks")) {
    if (chunk_fd >= 0) sweep_chunks();
    else printf("swept 0 0\nkept 0 0\n");
    if (fflush(stdout) != 0) die("stdout", "write");
    return 0;
  }
  in_buf = malloc(BUF), out_buf = malloc(BUF);
  if (!in_buf || !out_buf) die("-", "malloc");
  size_t n = 0, cap = 1024;
  char **names = malloc(cap * sizeof *names), *line = NULL;
  size_t lcap = 0;
  ssize_t len;
  while ((len = getline(&line, &lcap, stdin)) > 0) {
    if (line[len - 1] == '\n') line[--len] = 0;
    if (!len) continue;
    if (n == cap && !(names = realloc(names, (cap *= 2) * sizeof *names))) die("-", "malloc");
    if (!names || !(names[n++] = strdup(line))) die("-", "malloc");
  }
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  if (!strcmp(argv[1], "freeze")) freeze(names, n);
  else if (!strcmp(argv[1], "thaw")) thaw(names, n);
  else if (!strcmp(argv[1], "compact")) drop_names = names, n_drop = n, compact(threshold);
  else if (!strcmp(argv[1], "packed")) list_packed();
  else verify(names, n);
  if (fflush(stdout) != 0) die("stdout", "write");
  return 0;
}
