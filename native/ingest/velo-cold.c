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
#include "cold.h"
#include "../common/caller.h"

const char *cas_dir, *tmp_dir, *chunk_dir;
int cas_fd = -1, chunk_fd = -1, as_root;
static unsigned long seq;
uint8_t *in_buf, *out_buf;

void die(const char *path, const char *what) {
  int e = errno;
  fprintf(stderr, "velo-cold: %s: %s: %s\n", path, what, strerror(e));
  exit(1);
}
/* cold: NAME.zst or NAME.cdc */
void damaged(const char *cold, const char *why) {
  fprintf(stderr, "velo-cold: %s: damaged: %s\n", cold, why);
  exit(1);
}

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
int parse_name(const char *n, struct oname *o) {
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

void write_all(int fd, const void *p, size_t n, const char *what) {
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

int open_temp(char *tmp, size_t cap) {
  snprintf(tmp, cap, "%s/cold-%d-%lu", tmp_dir, (int)getpid(), seq++);
  int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) die(tmp, "create temp file");
  return fd;
}

/* Decompress the frame in fd (from 0) into out (-1: nowhere) while hashing (and into outer, when given); "" when it
 * hashes to hash (hex) and is size bytes long, else why not. */
const char *unpack_as(int fd, int out, const char *hash, uint64_t size, blake3_hasher *outer, const char *what) {
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

const char *unpack(int fd, int out, const struct oname *o, const char *what) { return unpack_as(fd, out, o->hash, o->size, NULL, what); }

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
int plain_now(const char *name) {
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
  if (velo_bind_to_caller() < 0) return 1;
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
