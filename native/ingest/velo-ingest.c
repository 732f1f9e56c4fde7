/* velo-ingest: the walk and content phases of `velo ingest` / `velo cache save` in one native pass.
 *
 *   velo-ingest [--adopt] [--b3 PATH MIN] [--index IN [--trust-index] --index-out OUT] CASDIR TMPDIR ROOT|NOROOT DIR...
 *
 * For each DIR (tree index 0, 1, ...): walk it without following symlinks (directories opened with O_NOFOLLOW
 * relative to their parent's fd, names sorted bytewise as the TypeScript walk sorts them), and store every
 * regular file with content as a CAS object: BLAKE3 of its bytes → if CASDIR/<h0h1>/<hash>_<size>_<mode>_<uid>_<gid>
 * exists, a dedup hit; else a temp file in TMPDIR (0600, O_EXCL) filled with the bytes hashed, chown'd (ROOT
 * only, when the owner differs) and chmod'ed to the variant, then link()ed into place (EEXIST: a hit) — the
 * protocol of src/store/cas.ts (docs/format.md, "Objects"). Files with extended attributes and sparse files
 * with no blocks (velo placeholders) are NOT stored here: flagged for the TypeScript side, which applies its
 * xattr policy and placeholder rule. One syncfs(CASDIR) at the end.
 *
 * Output, one record per entry (the DIR itself first, as "."), 13 fields each ending in NUL:
 *   tree  relpath  st_mode  uid  gid  size  mtime_sec  mtime_nsec  rdev  hardlink(dev:ino when nlink>1)
 *   hex(symlink target)  hash(hex, or empty)  flag
 * flag: '-' nothing stored (not a regular file, or empty), 'n' new object, 'd' object existed, 'x' has
 * extended attributes (not stored), 'X' the same and sparse without blocks (a `velo run` placeholder), 's' sparse
 * without blocks (not stored).
 * Subtrees down to SPLIT_DEPTH are walked on up to MAX_THREADS threads (one per CPU), each into a buffer of its own;
 * the buffers are written out in the order their subtrees were found, as each is done, so a directory's record
 * always comes before its entries' (what the TypeScript parser needs), while entries of different subtrees
 * interleave by subtree rather than by name (the layer built from them is the same: it sorts).
 * --index/--index-out (one DIR only: a volume's snapshot, fpindex.h): a regular file whose stat fingerprint matches
 * its record in IN is taken as the content recorded there (not opened, not read) when that object is in the store
 * (--trust-index: the caller vouches that it is — IN describes a layer the store holds, and the store lock keeps
 * gc away — so it is not looked up); OUT receives the fingerprints of every file stored or found this run.
 * OUT records every entry (directories, symlinks and the rest as present, fpindex.h: a complete index).
 * --delta (with --index): the records of a delta over the layers IN describes — what a volume snapshot stores on
 * top of the last one (docs/volumes.md, "Snapshots as deltas"). An entry IN vouches for as unchanged gets no record —
 * but a directory does (flag 'u', or 'U' with extended attributes: the TypeScript side drops those with nothing below
 * them), and so does a file with several links (a hard-link group is recorded whole, in one layer); every entry of IN
 * that the pass does not find, under a directory it found, gets a whiteout record after the walk (st_mode S_IFCHR,
 * flag 'w'); last comes a summary record (flag 'S', relpath empty): size = the bytes of every regular file in the
 * tree (an inode with several links once), rdev = their number (every path). Exit 3, before any work, when IN does
 * not list every entry (an older index, one a restore wrote, none): the caller runs the full pass.
 * --adopt (root; a tree that is deleted after the pass and that nothing writes, e.g. a layer containerd just unpacked):
 * a file with one link is taken into the store as it is, hard-linked into place, instead of copied (adopt()).
 * Exit 0; or "velo-ingest: PATH: what: strerror" on stderr and exit 1 (nothing is linked for a failed file). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <time.h>
#include "blake3.h"
#include "dirlist.h"
#include "records.h"
#include "fpindex.h"

#define SMALL (4u << 20)
#define CHUNK (1u << 20)

#define SPLIT_DEPTH 3
#define MAX_THREADS 4

static const char *cas_dir, *tmp_dir;
static int as_root;
static int cas_fd = -1;
static unsigned long seq; /* temp file names (atomic) */
static int n_threads = 1;

static struct fpindex index_in;
static struct fpindex_writer index_out;
static int use_index_out;
static int trust_index;
static int delta; /* --delta: records of what changed since IN only */
/* --delta's summary: every regular file's path, and its bytes once per inode */
static uint64_t sum_files, sum_bytes;
static pthread_mutex_t links_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  uint64_t (*k)[2];
  size_t cap, n;
} links; /* (dev, ino) of files with several links counted so far */
/* --adopt: a file is taken into the store by a hard link instead of a copy (see adopt()) */
static int adopt_files;
/* --b3 PATH MIN: files of MIN bytes and more are hashed for the first, deciding pass by velo-b3 (src/store/cas.ts
 * sets MIN): mapped and hashed on every core as b3sum does, where this pass reads (a copy) on one thread. */
static const char *b3_tool;
static uint64_t b3_min = UINT64_MAX;

/* each thread's: its records' buffer, read buffer, the index records of what it stored, the temp file it fills */
static __thread FILE *out;
static __thread uint8_t *chunk;
static __thread struct fpindex_writer *kept;
static __thread char cur_tmp[4096]; /* removed if we fail */

static pthread_mutex_t die_lock = PTHREAD_MUTEX_INITIALIZER;
static void die(const char *path, const char *what) {
  int e = errno;
  pthread_mutex_lock(&die_lock); /* the first to fail reports and exits (never unlocked); gc removes other temps */
  if (cur_tmp[0]) unlink(cur_tmp);
  /* other threads may be writing: the temp index goes by name, and _exit flushes no stream under their feet */
  if (use_index_out) unlink(index_out.tmp);
  fprintf(stderr, "velo-ingest: %s: %s: %s\n", path, what, strerror(e));
  _exit(1);
}

static void unhex32(const char *h, uint8_t *d) {
  for (int i = 0; i < 32; i++) {
    int a = h[2 * i], b = h[2 * i + 1];
    d[i] = (uint8_t)(((a <= '9' ? a - '0' : a - 'a' + 10) << 4) | (b <= '9' ? b - '0' : b - 'a' + 10));
  }
}


static void write_all(int fd, const uint8_t *p, size_t n, const char *what) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      die(what, "write");
    }
    p += w, n -= (size_t)w;
  }
}

/* Read all of fd from offset 0 into the hasher (and into tfd when >= 0); returns bytes read. */
static uint64_t hash_fd(int fd, int tfd, blake3_hasher *h, const char *path) {
  uint64_t off = 0;
  for (;;) {
    ssize_t n = pread(fd, chunk, CHUNK, (off_t)off);
    if (n < 0) {
      if (errno == EINTR) continue;
      die(path, "read");
    }
    if (n == 0) return off;
    blake3_hasher_update(h, chunk, (size_t)n);
    if (tfd >= 0) write_all(tfd, chunk, (size_t)n, tmp_dir);
    off += (uint64_t)n;
  }
}

/* The BLAKE3 (hex) and size of the open file fd by velo-b3: 0, or -1 when the caller must read it itself (no tool,
 * or it failed, e.g. killed by SIGBUS when the file shrank under its mapping). The child has the file as its fd 3
 * and opens /dev/fd/3 (the same inode, whatever its path is now); its stderr goes nowhere (ours is parsed). */
static int b3_hash(int fd, char *hash, uint64_t *size) {
  int pfd[2];
  if (!b3_tool || pipe2(pfd, O_CLOEXEC) < 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fd, 3);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  char *const args[] = {(char *)b3_tool, "--", "/dev/fd/3", NULL};
  extern char **environ;
  pid_t pid;
  int err = posix_spawn(&pid, b3_tool, &fa, NULL, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pfd[1]);
  char line[160];
  size_t len = 0;
  while (!err && len < sizeof line - 1) {
    ssize_t n = read(pfd[0], line + len, sizeof line - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(pfd[0]);
  int status = 0;
  if (!err)
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  if (err || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  line[len] = 0;
  /* "<64 hex> <size>\n" */
  char *end;
  if (len < 66 || line[64] != ' ' || strspn(line, "0123456789abcdef") != 64) return -1;
  unsigned long long n = strtoull(line + 65, &end, 10);
  if (end == line + 65 || *end != '\n') return -1;
  memcpy(hash, line, 64);
  hash[64] = 0;
  *size = n;
  return 0;
}

static void object_name(char *dst, size_t cap, const char *hash, uint64_t size, const struct stat *st) {
  snprintf(dst, cap, "%.2s/%s_%" PRIu64 "_%o_%u_%u", hash, hash, size, (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid, (unsigned)st->st_gid);
}

static int exists_at(const char *rel) {
  struct stat s;
  return fstatat(cas_fd, rel, &s, AT_SYMLINK_NOFOLLOW) == 0;
}

/* A new temp file, given its variant's metadata, linked under its name; EEXIST is a hit. Returns 1 when new. */
static int finish(int tfd, const char *tmp, const char *name, const struct stat *st) {
  if (as_root && (st->st_uid != geteuid() || st->st_gid != getegid()) && fchown(tfd, st->st_uid, st->st_gid) < 0) die(tmp, "chown");
  if (fchmod(tfd, st->st_mode & 07777) < 0) die(tmp, "chmod");
  if (close(tfd) < 0) die(tmp, "close");
  int isnew = 1;
  if (linkat(AT_FDCWD, tmp, cas_fd, name, 0) < 0) {
    if (errno != EEXIST) die(name, "link");
    isnew = 0;
  }
  unlink(tmp);
  cur_tmp[0] = 0;
  return isnew;
}

static int open_temp(char *tmp, size_t cap) {
  snprintf(tmp, cap, "%s/obj-native-%d-%lu", tmp_dir, (int)getpid(), __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) die(tmp, "create temp file");
  snprintf(cur_tmp, sizeof cur_tmp, "%s", tmp);
  return fd;
}

/* Store the regular file open as fd; hash (hex) out. Returns 'n' or 'd'. */
/* The file's content as of one state of it: a file written while it is read (a tenant that was not paused, a host
 * process) is read again, up to READ_TRIES times, until its size, mtime and ctime are the same before and after the
 * read; one that never settles is stored as last read, with a note. *st becomes the stat the content goes with. */
#define READ_TRIES 5
static char store_once(int fd, struct stat *st, const char *path, char *hash, uint64_t *stored);
static int same_state(const struct stat *a, const struct stat *b) {
  return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}
/* --adopt: the file itself becomes the object, linked by its fd into place, when nothing can tell it from a copy
 * made now — one link (nobody else's name for it), no change since it was stat'ed before the read (so its bytes
 * are the ones hashed, its mode and owner the name's) — and the kernel lets it (root: AT_EMPTY_PATH; same
 * filesystem). The caller vouches that nothing writes the file from now on (its tree is deleted after the pass).
 * Returns 1 linked (*st then the file's stat after the link, which changed its ctime and link count, so the caller's
 * "did it change while read" check compares with that), 0 EEXIST (a hit), -1 not adopted (the caller copies). */
static int adopt(int fd, struct stat *st, const char *name) {
  if (!adopt_files || !as_root || st->st_nlink != 1) return -1;
  struct stat now;
  if (fstat(fd, &now) < 0 || !same_state(st, &now) || now.st_nlink != 1 || now.st_mode != st->st_mode || now.st_uid != st->st_uid || now.st_gid != st->st_gid) return -1;
  if (linkat(fd, "", cas_fd, name, AT_EMPTY_PATH) < 0) return errno == EEXIST ? 0 : -1;
  if (fstat(fd, &now) == 0) {
    now.st_nlink = st->st_nlink; /* the tree's own links: the store's is not a hard link within the tree */
    *st = now;
  }
  return 1;
}

static char store_file(int fd, struct stat *st, const char *path, char *hash, uint64_t *stored) {
  for (int try = 1;; try++) {
    char r = store_once(fd, st, path, hash, stored);
    struct stat after;
    if (fstat(fd, &after) < 0) die(path, "stat");
    if (same_state(st, &after) && (uint64_t)after.st_size == *stored) return r;
    if (try == READ_TRIES) {
      fprintf(stderr, "velo: %s changed while it was read (%d times); stored as last read\n", path, READ_TRIES);
      return r;
    }
    /* the owner or mode may have changed too: the object's name follows the file as it is now */
    *st = after;
  }
}

static char store_once(int fd, struct stat *st, const char *path, char *hash, uint64_t *stored) {
  uint8_t d[32];
  blake3_hasher h;
  char name[256], tmp[4096];
  blake3_hasher_init(&h);
  if ((uint64_t)st->st_size <= SMALL) {
    /* small: read once, hash, then write from memory only when new */
    uint8_t *buf = (uint64_t)st->st_size <= CHUNK ? chunk : malloc((size_t)st->st_size + 1);
    if (!buf) die(path, "malloc");
    size_t cap = (uint64_t)st->st_size <= CHUNK ? CHUNK : (size_t)st->st_size + 1, len = 0;
    for (;;) {
      if (len == cap) break; /* grew meanwhile: what fits is what is stored, as read */
      ssize_t n = pread(fd, buf + len, cap - len, (off_t)len);
      if (n < 0) {
        if (errno == EINTR) continue;
        die(path, "read");
      }
      if (n == 0) break;
      len += (size_t)n;
    }
    if (len == cap && len > (uint64_t)st->st_size) {
      /* the file grew past what we can hold: fall back to the streaming path below */
      if (buf != chunk) free(buf);
      goto large;
    }
    blake3_hasher_update(&h, buf, len);
    blake3_hasher_finalize(&h, d, 32);
    hex_into(d, 32, hash);
    object_name(name, sizeof name, hash, len, st);
    char r = 'd';
    int a = exists_at(name) ? 0 : adopt(fd, st, name);
    if (a > 0) r = 'n';
    if (a < 0) {
      int tfd = open_temp(tmp, sizeof tmp);
      write_all(tfd, buf, len, tmp);
      r = finish(tfd, tmp, name, st) ? 'n' : 'd';
    }
    if (buf != chunk) free(buf);
    *stored = len;
    return r;
  }
large:
  /* large: hash first (a hit costs no write), then copy while hashing again: the name is the bytes written */
  uint64_t size;
  if ((uint64_t)st->st_size < b3_min || b3_hash(fd, hash, &size) < 0) {
    blake3_hasher_init(&h);
    size = hash_fd(fd, -1, &h, path);
    blake3_hasher_finalize(&h, d, 32);
    hex_into(d, 32, hash);
  }
  object_name(name, sizeof name, hash, size, st);
  *stored = size;
  if (exists_at(name)) return 'd';
  int a = adopt(fd, st, name);
  if (a >= 0) return a ? 'n' : 'd';
  int tfd = open_temp(tmp, sizeof tmp);
  blake3_hasher_init(&h);
  size = hash_fd(fd, tfd, &h, path);
  blake3_hasher_finalize(&h, d, 32);
  hex_into(d, 32, hash);
  object_name(name, sizeof name, hash, size, st);
  *stored = size;
  return finish(tfd, tmp, name, st) ? 'n' : 'd';
}

static int has_xattrs_fd(int fd) {
  ssize_t n = flistxattr(fd, NULL, 0);
  return n > 0;
}

static void record(int tree, const char *rel, const struct stat *st, const char *target, size_t tlen, const char *hash, char flag) {
  char b[64];
  rec_u64(out, (uint64_t)tree);
  rec_str(out, rel);
  rec_u64(out, st->st_mode);
  rec_u64(out, st->st_uid);
  rec_u64(out, st->st_gid);
  rec_u64(out, (uint64_t)st->st_size);
  snprintf(b, sizeof b, "%" PRId64, (int64_t)st->st_mtim.tv_sec);
  rec_str(out, b);
  rec_u64(out, (uint64_t)st->st_mtim.tv_nsec);
  rec_u64(out, (uint64_t)st->st_rdev);
  if (S_ISREG(st->st_mode) && st->st_nlink > 1) {
    snprintf(b, sizeof b, "%" PRIu64 ":%" PRIu64, (uint64_t)st->st_dev, (uint64_t)st->st_ino);
    rec_str(out, b);
  } else
    rec_str(out, "");
  if (target) {
    char *h = malloc(2 * tlen + 1);
    if (!h) die(rel, "malloc");
    hex_into((const uint8_t *)target, tlen, h);
    rec_str(out, h);
    free(h);
  } else
    rec_str(out, "");
  rec_str(out, hash ? hash : "");
  rec_field(out, &flag, 1);
}

/* A directory's flag: 'x' it has extended attributes (the TypeScript side reads them), 'u' a delta's base has it as
 * it is ('U' both) */
static char dir_flag(int xattrs, int unchanged) { return xattrs ? (unchanged ? 'U' : 'x') : unchanged ? 'u' : '-'; }

/* --delta's summary: a regular file counted (its bytes once per inode: hard links share them, as in a layer) */
static void count_file(const struct stat *st) {
  if (!delta) return;
  __atomic_add_fetch(&sum_files, 1, __ATOMIC_RELAXED);
  if (st->st_nlink > 1) {
    pthread_mutex_lock(&links_lock);
    if (2 * (links.n + 1) > links.cap) {
      size_t cap = links.cap ? 2 * links.cap : 1024;
      uint64_t (*k)[2] = calloc(cap, sizeof *k);
      if (!k) die("-", "malloc");
      for (size_t i = 0; i < links.cap; i++) {
        if (!links.k[i][1]) continue;
        size_t j = (size_t)(links.k[i][0] * 31 + links.k[i][1]) & (cap - 1);
        while (k[j][1]) j = (j + 1) & (cap - 1);
        memcpy(k[j], links.k[i], sizeof k[j]);
      }
      free(links.k);
      links.k = k, links.cap = cap;
    }
    /* inode numbers are never 0 on the filesystems a volume lives on: 0 marks an empty slot */
    size_t j = (size_t)((uint64_t)st->st_dev * 31 + (uint64_t)st->st_ino) & (links.cap - 1);
    while (links.k[j][1] && !(links.k[j][0] == (uint64_t)st->st_dev && links.k[j][1] == (uint64_t)st->st_ino)) j = (j + 1) & (links.cap - 1);
    int seen = links.k[j][1] != 0;
    if (!seen) links.k[j][0] = (uint64_t)st->st_dev, links.k[j][1] = (uint64_t)st->st_ino, links.n++;
    pthread_mutex_unlock(&links_lock);
    if (seen) return;
  }
  __atomic_add_fetch(&sum_bytes, (uint64_t)st->st_size, __ATOMIC_RELAXED);
}

/* --delta: an entry of the index gone from the tree (fpindex_each_gone) */
static void record_whiteout(void *ctx, const char *rel, size_t len) {
  (void)ctx;
  char *p = strndup(rel, len);
  if (!p) die("-", "malloc");
  struct stat st;
  memset(&st, 0, sizeof st);
  st.st_mode = S_IFCHR;
  record(0, p, &st, NULL, 0, NULL, 'w');
  free(p);
}

/* After a failed call on an entry: 1 when the name was removed or renamed away since the listing (a live tree: a
 * volume's writers not paused), so it is not part of the tree any more, as tar and rsync treat it (rel cut back to
 * its parent); any other error ends the pass. */
static int gone(char *rel, size_t rlen, const char *what) {
  if (errno != ENOENT) die(rel, what);
  rel[rlen] = 0;
  return 1;
}

/* A subtree walked on its own (its directory's record is in the buffer of the task that found it), or a tree's
 * root (root: its "." record first). Its buffers are written out in id order, each once done. */
struct task {
  size_t id;
  int tree, root;
  const char *abs; /* the tree's path, for messages */
  char *rel;
  size_t rlen;
  dev_t dev; /* the directory its record describes: reopened, it must be the same */
  ino_t ino;
  int done;
  char *buf, *ix;
  size_t len, ix_len;
  uint64_t ix_count;
};
static int *tree_fd; /* each tree's root, opened once */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static struct task **tasks; /* by id */
static size_t n_tasks, tasks_cap, q_head, q_busy; /* ids below q_head are taken; being walked */
static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t next_flush;

static void walk(int tree, int dfd, char *rel, size_t rlen, const char *abs);

static void push_task(struct task *t) {
  pthread_mutex_lock(&q_lock);
  if (n_tasks == tasks_cap) {
    tasks_cap = tasks_cap ? 2 * tasks_cap : 256;
    tasks = realloc(tasks, tasks_cap * sizeof *tasks);
    if (!tasks) die("-", "malloc");
  }
  t->id = n_tasks;
  tasks[n_tasks++] = t;
  pthread_cond_signal(&q_cond);
  pthread_mutex_unlock(&q_lock);
}

/* Hand directory REL (its record written) to another thread when shallow enough and there are threads: 1 = handed
 * (dfd closed: the thread that takes it opens it again beneath the tree's root, fds are few), 0 = walk it here. */
static int split(int tree, int dfd, const char *rel, size_t rlen, const char *abs, const struct stat *st) {
  if (n_threads < 2) return 0;
  int depth = 1;
  for (size_t i = 0; i < rlen; i++) depth += rel[i] == '/';
  if (depth > SPLIT_DEPTH) return 0;
  struct task *t = calloc(1, sizeof *t);
  if (!t || !(t->rel = strdup(rel))) die(rel, "malloc");
  t->tree = tree, t->abs = abs, t->rlen = rlen, t->dev = st->st_dev, t->ino = st->st_ino;
  close(dfd);
  push_task(t);
  return 1;
}

static int has_xattrs_fd(int fd);
static void record(int tree, const char *rel, const struct stat *st, const char *target, size_t tlen, const char *hash, char flag);

/* Write out every finished buffer whose predecessors are out (any thread, after finishing one). A thread that finds
 * another writing goes back to walking (the pipe may be full: the reader is slower); the last call, after all
 * threads are done, writes whatever is left. */
static void flush_done(int wait) {
  if (wait) pthread_mutex_lock(&flush_lock);
  else if (pthread_mutex_trylock(&flush_lock) != 0) return;
  for (;;) {
    pthread_mutex_lock(&q_lock);
    struct task *t = next_flush < n_tasks ? tasks[next_flush] : NULL;
    pthread_mutex_unlock(&q_lock);
    if (!t || !__atomic_load_n(&t->done, __ATOMIC_ACQUIRE)) break;
    if (t->len && fwrite(t->buf, 1, t->len, stdout) != t->len) die("stdout", "write");
    if (t->ix_len && fwrite(t->ix, 1, t->ix_len, index_out.f) != t->ix_len) die("index", "write");
    index_out.count += t->ix_count;
    free(t->buf), free(t->ix), free(t->rel);
    t->buf = t->ix = t->rel = NULL;
    next_flush++;
  }
  fflush(stdout); /* the parser reads as we go */
  pthread_mutex_unlock(&flush_lock);
}

static void run_task(struct task *t) {
  static __thread char rel[65536];
  FILE *f = open_memstream(&t->buf, &t->len);
  struct fpindex_writer w;
  if (!f) die("-", "malloc");
  out = f;
  kept = NULL;
  if (use_index_out) {
    w = index_out; /* its cutoff; records into a buffer */
    w.count = 0;
    if (!(w.f = open_memstream(&t->ix, &t->ix_len))) die("-", "malloc");
    kept = &w;
  }
  int dfd = t->root ? dup(tree_fd[t->tree]) : open_dir_beneath(tree_fd[t->tree], t->rel);
  if (dfd < 0 && (t->root || (errno != ENOENT && errno != ENOTDIR && errno != ELOOP))) die(t->root ? t->abs : t->rel, "open directory");
  struct stat now;
  if (dfd >= 0 && !t->root && (fstat(dfd, &now) < 0 || now.st_dev != t->dev || now.st_ino != t->ino)) {
    close(dfd); /* replaced by another directory since its record was written: not the one it describes */
    dfd = -1;
  }
  if (dfd < 0) goto done; /* gone since it was listed: its record stands, nothing below it (as a live tree goes) */
  if (t->root) {
    struct stat st;
    if (fstat(dfd, &st) < 0) die(t->abs, "stat");
    int x = has_xattrs_fd(dfd);
    long slot = fpindex_find(&index_in, ".", 1);
    fpindex_mark(&index_in, slot, 1);
    record(t->tree, ".", &st, NULL, 0, NULL, dir_flag(x, delta && fpindex_same(&index_in, slot, &st)));
    if (kept && fpindex_writer_seen(kept, ".", 1, &st, 1) < 0) die(".", "write index");
  }
  memcpy(rel, t->rel, t->rlen + 1);
  walk(t->tree, dfd, rel, t->rlen, t->abs);
  close(dfd);
done:
  if (fclose(f) != 0) die("-", "malloc");
  if (kept) {
    if (fclose(w.f) != 0) die("-", "malloc");
    t->ix_count = w.count;
  }
  out = NULL, kept = NULL;
  __atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
  flush_done(0);
}

static void *worker(void *arg) {
  (void)arg;
  chunk = malloc(CHUNK);
  if (!chunk) die("-", "malloc");
  pthread_mutex_lock(&q_lock);
  for (;;) {
    if (q_head < n_tasks) {
      struct task *t = tasks[q_head++]; /* oldest first: the buffers go out in this order */
      q_busy++;
      pthread_mutex_unlock(&q_lock);
      run_task(t);
      pthread_mutex_lock(&q_lock);
      q_busy--;
      if (q_head == n_tasks && !q_busy) pthread_cond_broadcast(&q_cond); /* all walked: everyone leaves */
      continue;
    }
    if (!q_busy) break;
    pthread_cond_wait(&q_cond, &q_lock);
  }
  pthread_mutex_unlock(&q_lock);
  free(chunk);
  chunk = NULL;
  return NULL;
}

static void walk(int tree, int dfd, char *rel, size_t rlen, const char *abs) {
  struct dirlist dl;
  if (dirlist_read(dfd, &dl) < 0) die(abs, "read directory");
  for (size_t i = 0; i < dl.n; i++) {
    const char *nm = dl.names[i];
    size_t nl = strlen(nm);
    size_t at = rlen;
    if (rlen + nl + 2 >= 65536) {
      errno = ENAMETOOLONG;
      die(abs, "path");
    }
    if (rlen) rel[at++] = '/';
    memcpy(rel + at, nm, nl + 1);
    struct stat st;
    if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0 && gone(rel, rlen, "stat")) continue;
    size_t rl = at + nl;
    /* sockets are in no layer: one in place of an entry of the index leaves that entry gone (a whiteout) */
    long slot = S_ISSOCK(st.st_mode) ? -1 : fpindex_find(&index_in, rel, rl);
    /* each kind below marks it found once it is sure the entry is there (one gone since the listing is not) */
    if (S_ISDIR(st.st_mode)) {
      int c = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (c < 0 && gone(rel, rlen, "open directory")) continue;
      fpindex_mark(&index_in, slot, 1);
      int x = has_xattrs_fd(c);
      record(tree, rel, &st, NULL, 0, NULL, dir_flag(x, delta && fpindex_same(&index_in, slot, &st)));
      if (kept && fpindex_writer_seen(kept, rel, rl, &st, 1) < 0) die(rel, "write index");
      if (!split(tree, c, rel, at + nl, abs, &st)) {
        walk(tree, c, rel, at + nl, abs);
        close(c);
      }
    } else if (S_ISREG(st.st_mode)) {
      const uint8_t *known = fpindex_match(&index_in, slot, &st);
      /* a file with several links is recorded however unchanged: its group must be whole in one layer, and a rename
       * of a directory holding another of its links changes no ctime of it */
      if (delta && trust_index && st.st_nlink == 1 && fpindex_same(&index_in, slot, &st)) {
        /* as the index saw it: in the base already (its object too: the base's layers are held) */
        fpindex_mark(&index_in, slot, 0);
        count_file(&st);
        if (kept && (known ? fpindex_writer_add(kept, rel, rl, &st, known) : fpindex_writer_seen(kept, rel, rl, &st, 1)) < 0) die(rel, "write index");
        rel[rlen] = 0;
        continue;
      }
      if (known) fpindex_mark(&index_in, slot, 0), count_file(&st);
      if (known) {
        /* unchanged since the index saw it (and it had no extended attributes then): its object, if still there */
        char hash[65], name[256];
        hex_into(known, 32, hash);
        object_name(name, sizeof name, hash, (uint64_t)st.st_size, &st);
        if (trust_index || exists_at(name)) {
          if (!delta || st.st_nlink > 1) record(tree, rel, &st, NULL, 0, hash, 'd');
          if (kept && fpindex_writer_add(kept, rel, rl, &st, known) < 0) die(rel, "write index");
          rel[rlen] = 0;
          continue;
        }
      }
      int f = openat(dfd, nm, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      if (f < 0 && gone(rel, rlen, "open")) continue;
      if (!known) fpindex_mark(&index_in, slot, 0), count_file(&st);
      char hash[65];
      char flag = '-';
      uint64_t stored = 0;
      if (has_xattrs_fd(f))
        flag = st.st_size > 0 && st.st_blocks == 0 ? 'X' : 'x'; /* 'X': also sparse (a `velo run` placeholder) */
      else if (st.st_size > 0 && st.st_blocks == 0)
        flag = 's';
      else if (st.st_size > 0)
        flag = store_file(f, &st, rel, hash, &stored);
      if (flag == 'n' || flag == 'd') {
        /* the size recorded is what was stored (a file that changed between stat and read) */
        struct stat now = st;
        now.st_size = (off_t)stored;
        record(tree, rel, &now, NULL, 0, hash, flag);
        if (kept && stored == (uint64_t)st.st_size) {
          uint8_t d[32];
          unhex32(hash, d);
          if (fpindex_writer_add(kept, rel, rl, &st, d) < 0) die(rel, "write index");
        } else if (kept && fpindex_writer_seen(kept, rel, rl, &st, 0) < 0)
          die(rel, "write index");
      } else {
        record(tree, rel, &st, NULL, 0, NULL, flag);
        /* '-': empty; 'x', 'X', 's': read by the TypeScript side, as long as the fingerprint holds the same */
        if (kept && fpindex_writer_seen(kept, rel, rl, &st, 1) < 0) die(rel, "write index");
      }
      close(f);
    } else if (S_ISLNK(st.st_mode)) {
      if (delta && fpindex_same(&index_in, slot, &st)) {
        /* a symlink's target cannot change without its ctime (a new link replaces it) */
        fpindex_mark(&index_in, slot, 0);
        if (kept && fpindex_writer_seen(kept, rel, rl, &st, 1) < 0) die(rel, "write index");
        rel[rlen] = 0;
        continue;
      }
      char target[4096];
      ssize_t tl = readlinkat(dfd, nm, target, sizeof target);
      if (tl < 0 && gone(rel, rlen, "read link")) continue;
      fpindex_mark(&index_in, slot, 0);
      char px[4200];
      snprintf(px, sizeof px, "/proc/self/fd/%d/%s", dfd, nm);
      ssize_t xl = llistxattr(px, NULL, 0);
      record(tree, rel, &st, target, (size_t)tl, NULL, xl > 0 ? 'x' : '-');
      if (kept && fpindex_writer_seen(kept, rel, rl, &st, 1) < 0) die(rel, "write index");
    } else if (S_ISSOCK(st.st_mode)) {
      record(tree, rel, &st, NULL, 0, NULL, '-'); /* the TypeScript side leaves it out, as tar does */
    } else {
      /* fifo, device: their extended attributes are not read (as before: the layer has none for them) */
      fpindex_mark(&index_in, slot, 0);
      if (!(delta && fpindex_same(&index_in, slot, &st))) record(tree, rel, &st, NULL, 0, NULL, '-');
      if (kept && fpindex_writer_seen(kept, rel, rl, &st, 1) < 0) die(rel, "write index");
    }
    rel[rlen] = 0;
  }
  dirlist_free(&dl);
}

int main(int argc, char **argv) {
  struct timespec started;
  clock_gettime(CLOCK_REALTIME, &started);
  const char *index_in_path = NULL, *index_out_path = NULL;
  for (;;) {
    if (argc > 1 && strcmp(argv[1], "--trust-index") == 0) {
      trust_index = 1;
      argv++, argc--;
    } else if (argc > 1 && strcmp(argv[1], "--delta") == 0) {
      delta = 1;
      argv++, argc--;
    } else if (argc > 1 && strcmp(argv[1], "--adopt") == 0) {
      adopt_files = 1;
      argv++, argc--;
    } else if (argc > 3 && strcmp(argv[1], "--b3") == 0) {
      char *end;
      b3_tool = argv[2];
      b3_min = strtoull(argv[3], &end, 10);
      if (*end || end == argv[3]) {
        fprintf(stderr, "velo-ingest: --b3 PATH MIN: MIN is a size in bytes, not %s\n", argv[3]);
        return 2;
      }
      argv += 3, argc -= 3;
    } else if (argc > 2 && (strcmp(argv[1], "--index") == 0 || strcmp(argv[1], "--index-out") == 0)) {
      if (strcmp(argv[1], "--index") == 0) index_in_path = argv[2];
      else index_out_path = argv[2];
      argv += 2, argc -= 2;
    } else
      break;
  }
  if (argc < 5 || ((index_in_path || index_out_path) && argc != 5) || (delta && !index_in_path)) {
    fprintf(stderr, "usage: velo-ingest [--adopt] [--b3 PATH MIN] [--index IN [--trust-index] [--delta] --index-out OUT] CASDIR TMPDIR ROOT|NOROOT DIR... (an index: one DIR)\n");
    return 2;
  }
  if (index_in_path && fpindex_load(&index_in, index_in_path) < 0) die(index_in_path, "read index");
  if (delta && !index_in.complete) {
    fprintf(stderr, "velo-ingest: %s: does not list every entry: no delta\n", index_in_path);
    return 3;
  }
  if (index_out_path) {
    if (fpindex_writer_open(&index_out, index_out_path, &started, 1) < 0) die(index_out_path, "write index");
    use_index_out = 1;
  }
  cas_dir = argv[1];
  tmp_dir = argv[2];
  as_root = strcmp(argv[3], "ROOT") == 0;
  cas_fd = open(cas_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cas_fd < 0) die(cas_dir, "open");
  setvbuf(stdout, NULL, _IOFBF, 1 << 20);
  int n_trees = argc - 4;
  tree_fd = calloc((size_t)n_trees, sizeof *tree_fd);
  if (!tree_fd) die("-", "malloc");
  for (int t = 0; t < n_trees; t++) {
    const char *dir = argv[t + 4];
    tree_fd[t] = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tree_fd[t] < 0) die(dir, "open directory");
    struct task *root = calloc(1, sizeof *root);
    if (!root || !(root->rel = strdup(""))) die("-", "malloc");
    root->tree = t, root->root = 1, root->abs = dir;
    push_task(root);
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  n_threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
  pthread_t th[MAX_THREADS];
  for (int i = 1; i < n_threads; i++)
    if (pthread_create(&th[i], NULL, worker, NULL) != 0) die("-", "pthread_create");
  worker(NULL);
  for (int i = 1; i < n_threads; i++) pthread_join(th[i], NULL);
  flush_done(1);
  if (next_flush != n_tasks) {
    errno = EIO;
    die("-", "records left unwritten");
  }
  if (delta) {
    /* every thread is done: what the index has and the walk did not find, then the summary */
    out = stdout;
    fpindex_each_gone(&index_in, record_whiteout, NULL);
    struct stat sum;
    memset(&sum, 0, sizeof sum);
    sum.st_size = (off_t)sum_bytes;
    sum.st_rdev = (dev_t)sum_files;
    record(0, "", &sum, NULL, 0, NULL, 'S');
    out = NULL;
  }
  /* always: an object found here may have been linked by a concurrent writer that has not synced yet */
  if (syncfs(cas_fd) < 0) die(cas_dir, "syncfs");
  if (use_index_out && fpindex_writer_commit(&index_out) < 0) die(index_out_path, "write index");
  if (fflush(stdout) != 0) die("stdout", "write");
  return 0;
}
