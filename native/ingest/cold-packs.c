/* velo-cold: packs of small cold objects (docs/format.md, "Packs"). */
#include "cold.h"

/* A pack (docs/format.md, "Packs"): PACKDIR/<BLAKE3 of the file>.pack, zstd frames each holding whole objects one
 * after another (about FRAME_RAW bytes a frame: small files compress together), then an index, one text line per
 * object — "<h0h1>/<name> FRAME_OFFSET FRAME_LENGTH OFFSET_IN_FRAME" — then a trailer: u64 index offset, u64 index
 * length (little-endian), PACK_MAGIC. A pack is written whole into TMPDIR, read back and checked, and renamed into
 * place: it is there whole or not at all. An object in two packs (a compaction cut short) is read from the first by
 * name; the later copy counts as dead. */
const char *pack_dir;
int pack_fd = -1;

static struct pentry *pe;
static size_t npe, cap_pe;
struct pack *packs;
static size_t npacks;
static size_t *pmap, pmap_cap; /* name → 1 + index into pe (the first pack with it), open addressing */
static int packs_loaded;
size_t unloaded = NPOS_NONE; /* a pack whose index could not be read (the first), or NPOS_NONE */

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
struct pentry *pack_find(const char *name) {
  if (!pmap_cap) return NULL;
  size_t v = *pmap_slot(name);
  return v ? &pe[v - 1] : NULL;
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

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
void load_packs(void) {
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

/* The first copy of name that reads back right (into out, -1: nowhere); NULL and *why (the first copy's problem)
 * when none does. */
const struct pentry *packed_read(const struct pentry *e, int out, const struct oname *o, const char **why) {
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
struct done_pack *done_packs;
size_t n_done_packs;

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
void pw_finish(ZSTD_CCtx *c) {
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
void place_done_packs(void) {
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
int pack_small(ZSTD_CCtx *c, const char *name, const struct oname *o, int fd) {
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
char **drop_names;
size_t n_drop;

/* compact: drop what stdin names; of the other names with several copies, every copy but the first that reads back
 * right is redundant ("extra"). Every pack whose dead share (dropped and redundant copies) is THRESHOLD or more of its
 * raw bytes is rewritten with its live objects (all such packs into new ones together, each object checked on the
 * way: a pack with a damaged live object is left as it is and named), then removed. Prints "compacted REWRITTEN
 * REMOVED MOVED DROPPED DROPPED_BYTES BYTES_BEFORE BYTES_AFTER", "dropped NAME" for each name no pack holds any more
 * (DROPPED counts those), and "damaged PACK NAME WHY". */
void compact(double threshold) {
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
void list_packed(void) {
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

