/* velo-cold: cold objects of the store kept zstd-compressed (docs/volumes.md, "Cold objects").
 *
 *   velo-cold freeze|thaw|verify CASDIR TMPDIR ROOT|NOROOT   < object names (<h0h1>/<name>), one per line
 *
 * An object HASH_SIZE_MODE_UID_GID (docs/format.md, "Objects"; none with xattrs: a compressed file could not carry
 * them) is either hot — the plain file CASDIR/<h0h1>/<name>, what farms link and readers open — or cold: the file
 * <name>.zst beside it, one zstd frame of the same bytes, 0600, with no plain file.
 *
 * freeze: each plain object with one link (no farm or checkout shares its inode) is compressed into a temp file in
 *   TMPDIR, which is decompressed again and must hash to the name; one that would not use fewer disk blocks
 *   compressed stays hot. Then one syncfs, every <name>.zst renamed into place, one syncfs, and only then the plain
 *   files unlinked (each still with one link): a kill at any point leaves each object hot, or hot and cold at once
 *   (the next gc drops the redundant .zst), or cold — never neither. Prints "frozen NAME PLAIN_BYTES ZST_BYTES" or
 *   "kept NAME WHY" per name.
 * thaw: each cold object is decompressed into a temp file while it is hashed; one whose bytes do not hash to its
 *   name fails the run (exit 1, "velo-cold: NAME.zst: damaged: ...") and nothing is linked. The temp files get their
 *   names' mode and owner (ROOT); one syncfs; each is linked into place (EEXIST: hot already); one syncfs; the .zst
 *   files unlinked. Prints "thawed NAME" or "hot NAME" (a plain file was there, or came meanwhile; its .zst is left
 *   for gc).
 * verify: prints "ok NAME", "bad NAME WHY", "hot NAME" (thawed meanwhile: check the plain file) or "unreadable NAME"
 *   (this user may not read it) for each cold object; exit 0 (the caller reports).
 * Errors: "velo-cold: PATH: what: strerror" on stderr, exit 1. The caller holds the store's lock: exclusive for
 * freeze (gc), shared for thaw (as a writer) and verify (fsck). */
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

static const char *cas_dir, *tmp_dir;
static int cas_fd = -1, as_root;
static unsigned long seq;
static uint8_t *in_buf, *out_buf;

static void die(const char *path, const char *what) {
  int e = errno;
  fprintf(stderr, "velo-cold: %s: %s: %s\n", path, what, strerror(e));
  exit(1);
}
static void damaged(const char *name, const char *why) {
  fprintf(stderr, "velo-cold: %s.zst: damaged: %s\n", name, why);
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

/* Decompress the frame in fd (from 0) into out (-1: nowhere) while hashing; "" when it hashes to o, else why not. */
static const char *unpack(int fd, int out, const struct oname *o, const char *what) {
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
      die(what, "read");
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
  if (total != o->size || strcmp(hex, o->hash)) {
    snprintf(why, sizeof why, "content hashes to %s (%" PRIu64 " bytes), not to its name", hex, total);
    return why;
  }
  return "";
}

struct pending {
  char *name, *tmp;
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
  ZSTD_freeCCtx(c);
  if (syncfs(cas_fd) < 0) die(cas_dir, "syncfs");
  for (size_t i = 0; i < np; i++) {
    char dst[4200];
    snprintf(dst, sizeof dst, "%s.zst", p[i].name);
    if (renameat(AT_FDCWD, p[i].tmp, cas_fd, dst) < 0) die(dst, "rename");
  }
  if (syncfs(cas_fd) < 0) die(cas_dir, "syncfs");
  for (size_t i = 0; i < np; i++) {
    struct stat st;
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
    snprintf(zname, sizeof zname, "%s.zst", names[i]);
    int z = openat(cas_fd, zname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (z < 0 && errno == ENOENT && plain_now(names[i])) {
      printf("hot %s\n", names[i]);
      continue;
    }
    if (z < 0) die(zname, "open");
    int t = open_temp(tmp, sizeof tmp);
    const char *why = unpack(z, t, &o, zname);
    close(z);
    if (*why) {
      close(t);
      unlink(tmp);
      for (size_t j = 0; j < np; j++) unlink(p[j].tmp);
      damaged(names[i], why);
    }
    /* chown before chmod: chown clears setuid/setgid */
    if (as_root && (o.uid != geteuid() || o.gid != getegid()) && fchown(t, o.uid, o.gid) < 0) die(tmp, "chown");
    if (fchmod(t, o.mode & 07777) < 0) die(tmp, "chmod");
    if (close(t) < 0) die(tmp, "close");
    p[np].name = names[i];
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
  for (size_t i = 0; i < np; i++) {
    char zname[4200];
    snprintf(zname, sizeof zname, "%s.zst", p[i].name);
    if (unlinkat(cas_fd, zname, 0) < 0 && errno != ENOENT) die(zname, "unlink");
  }
}

static void verify(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct oname o;
    if (!parse_name(names[i], &o)) {
      printf("bad %s not an object name\n", names[i]);
      continue;
    }
    char zname[4200];
    snprintf(zname, sizeof zname, "%s.zst", names[i]);
    int z = openat(cas_fd, zname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (z < 0) {
      /* thawed meanwhile (a checkout): the plain file is the object now; one this user may not read is not checked */
      if (errno == ENOENT && plain_now(names[i])) printf("hot %s\n", names[i]);
      else if (errno == EACCES || errno == EPERM) printf("unreadable %s\n", names[i]);
      else printf("bad %s %s\n", names[i], strerror(errno));
      continue;
    }
    const char *why = unpack(z, -1, &o, zname);
    close(z);
    if (*why) printf("bad %s %s\n", names[i], why);
    else printf("ok %s\n", names[i]);
  }
}

int main(int argc, char **argv) {
  if (argc != 5 || (strcmp(argv[1], "freeze") && strcmp(argv[1], "thaw") && strcmp(argv[1], "verify"))) {
    fprintf(stderr, "usage: velo-cold freeze|thaw|verify CASDIR TMPDIR ROOT|NOROOT < object names\n");
    return 2;
  }
  /* the caller's store lock is its own fd: a freeze or thaw must not outlive it (a gc killed with -9) */
  const char *caller = getenv("VELO_COLD_PARENT"); /* the caller's pid: gone already, and this is an orphan */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || (caller && getppid() != (pid_t)atol(caller))) return 1;
  cas_dir = argv[2], tmp_dir = argv[3], as_root = strcmp(argv[4], "ROOT") == 0;
  cas_fd = open(cas_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cas_fd < 0) die(cas_dir, "open");
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
  else verify(names, n);
  if (fflush(stdout) != 0) die("stdout", "write");
  return 0;
}
