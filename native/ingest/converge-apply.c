/* velo-converge --apply: a restore's plan carried out (docs/volumes.md, "Snapshots").
 *
 *   velo-converge --apply DIR PLAN [--no-chown]
 *
 * PLAN is what the planning pass wrote (velo-converge.c): segments, each a u64 (little-endian) byte count and that
 * many bytes of records, one subtree's each. A segment's records only concern paths inside its subtree, so segments
 * are applied on up to MAX_APPLY_THREADS threads, each in its own order: removals ('D', and the first half of 'R')
 * and creations in plan order (parents before children), then the metadata of each non-directory as soon as it
 * exists (../common/meta.h: owners, mode, xattrs, times). Two kinds of work wait for every segment to be done, on one
 * thread: hard-link groups (a group may span subtrees: its first path in plan order gets the copy and the metadata,
 * the others are linked to it) and the metadata of directories, deepest first and the root last, so nothing made
 * later moves a directory's mtime. Every path is reached beneath DIR without following a symlink (openat2, as
 * velo-meta); an 'M' never changes an inode that is linked from elsewhere too (st_nlink > 1: the plan replaces those),
 * and removing a tree of any depth holds at most RM_DEPTH directories open. A regular file's bytes come from its
 * store object (copy_file_range), and a copy must have the size the snapshot records. Prints "REMOVED WRITTEN META_ONLY" on success; on the first failure, "velo-converge: what:
 * why" on stderr and exit 1. A plan is applied once: a restore killed midway is finished by planning again, which
 * converges on the same tree from whatever state the kill left. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../common/meta.h"
#include "converge.h"

#define MAX_APPLY_THREADS 4
#define FIELDS 13

struct rec {
  char action;
  char *rel;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  int64_t mtime_sec;
  long mtime_nsec;
  dev_t rdev;
  const char *object, *target_hex, *xattrs_hex, *group;
  uint64_t size;
};

struct segment {
  struct rec *v;
  size_t n;
};

static int root = -1;
static int do_chown = 1;
static struct segment *segments;
static size_t n_segments, next_segment;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* what waits for every segment (under lock): records of hard-linked files, directories' metadata */
static struct rec **later_links, **later_dirs;
static size_t n_links, cap_links, n_dirs, cap_dirs;
static uint64_t removed, written, meta_only;

static void push(struct rec ***v, size_t *n, size_t *cap, struct rec *r) {
  if (*n == *cap) {
    *cap = *cap ? 2 * *cap : 256;
    *v = realloc(*v, *cap * sizeof **v);
    if (!*v) converge_die("out of memory", ENOMEM);
  }
  (*v)[(*n)++] = r;
}

static void fail(const struct velo_err *err) { converge_die(err->msg, 0); }

static char type_of(mode_t mode) {
  switch (mode & S_IFMT) {
  case S_IFDIR: return 'd';
  case S_IFREG: return 'f';
  case S_IFLNK: return 'l';
  case S_IFIFO: return 'p';
  case S_IFCHR: return 'c';
  case S_IFBLK: return 'b';
  default: return 0;
  }
}

/* The parent of R's path, opened beneath the root; its last component in *BASE. */
static int parent_of(struct rec *r, const char **base) {
  struct velo_err err;
  int fd = velo_open_parent(root, r->rel, base, &err);
  if (fd < 0) fail(&err);
  if (!strcmp(*base, ".") || !strcmp(*base, "..") || !**base) converge_die(r->rel, EINVAL);
  return fd;
}

/* Everything inside directory FD removed, never through a symlink (entries are unlinked, never opened through).
 * A tree of any depth needs at most RM_DEPTH open directories: a directory deeper than that below TOP is moved up
 * into TOP (renameat2, RENAME_NOREPLACE: the same filesystem) rather than entered, and TOP is read again until a
 * pass moves nothing up. *MOVED counts those. */
#define RM_DEPTH 32
static unsigned long moved_seq;
static void empty_dir_at(int fd, int top, int depth, const char *rel, unsigned long *moved) {
  DIR *d = fdopendir(fd);
  if (!d) converge_die(rel, errno);
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    int is_dir = de->d_type == DT_DIR;
    if (de->d_type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) converge_die(rel, errno);
      is_dir = S_ISDIR(st.st_mode);
    }
    if (is_dir && depth >= RM_DEPTH) {
      char up[64];
      snprintf(up, sizeof up, ".velo-rm-%d-%lu", (int)getpid(), __atomic_add_fetch(&moved_seq, 1, __ATOMIC_RELAXED));
      if (renameat2(dirfd(d), de->d_name, top, up, RENAME_NOREPLACE) < 0) converge_die(rel, errno);
      (*moved)++;
      errno = 0;
      continue;
    }
    if (is_dir) {
      int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) converge_die(rel, errno);
      empty_dir_at(sub, top, depth + 1, rel, moved);
    }
    if (unlinkat(dirfd(d), de->d_name, is_dir ? AT_REMOVEDIR : 0) < 0) converge_die(rel, errno);
    errno = 0;
  }
  if (errno) converge_die(rel, errno);
  closedir(d);
}
static void empty_dir(int top, const char *rel) {
  for (unsigned long moved = 1; moved;) {
    moved = 0;
    int fd = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* its own offset: read from the start */
    if (fd < 0) converge_die(rel, errno);
    empty_dir_at(fd, top, 0, rel, &moved);
  }
  close(top);
}

/* R's path and everything below it removed; absent is fine (a plan applied again) */
static void remove_path(struct rec *r) {
  const char *base;
  int pfd = parent_of(r, &base);
  struct stat st;
  if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno != ENOENT) converge_die(r->rel, errno);
  } else if (S_ISDIR(st.st_mode)) {
    int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) converge_die(r->rel, errno);
    empty_dir(fd, r->rel);
    if (unlinkat(pfd, base, AT_REMOVEDIR) < 0) converge_die(r->rel, errno);
  } else if (unlinkat(pfd, base, 0) < 0 && errno != ENOENT)
    converge_die(r->rel, errno);
  close(pfd);
}

/* R's regular file made with its content: the store object's bytes (no object: empty) */
static void make_file(struct rec *r) {
  const char *base;
  int pfd = parent_of(r, &base);
  int out = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) converge_die(r->rel, errno);
  close(pfd);
  if (r->object[0]) {
    int in = open(r->object, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
      int en = errno;
      char m[4400];
      if (en == ENOENT) snprintf(m, sizeof m, "%s: its object is missing from the store (%s)", r->rel, r->object);
      else snprintf(m, sizeof m, "%s: its object %s", r->rel, r->object);
      if (en == ENOENT) converge_die_integrity(m);
      converge_die(m, en);
    }
    uint64_t total = 0;
    int plain = 0; /* copy_file_range refused (an old kernel across filesystems): read and write */
    char buf[1 << 16];
    for (;;) {
      ssize_t n = plain ? -1 : copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
      if (n < 0 && !plain && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) && total == 0) plain = 1;
      if (plain) {
        n = read(in, buf, sizeof buf);
        if (n > 0)
          for (ssize_t o = 0; o < n;) {
            ssize_t w = write(out, buf + o, (size_t)(n - o));
            if (w < 0) converge_die(r->rel, errno);
            o += w;
          }
      }
      if (n < 0) converge_die(r->rel, errno);
      if (n == 0) break;
      total += (uint64_t)n;
    }
    close(in);
    if (total != r->size) {
      char m[4400];
      snprintf(m, sizeof m, "%s: its object has %" PRIu64 " bytes, the snapshot says %" PRIu64 " (%s is damaged)", r->rel, total, r->size, r->object);
      converge_die_integrity(m);
    }
  }
  if (close(out) < 0) converge_die(r->rel, errno);
}

static void set_meta(struct rec *r) {
  struct velo_meta m = {
      .path = r->rel,
      .type = type_of(r->mode),
      .mode = r->mode & 07777,
      .uid = r->uid,
      .gid = r->gid,
      .mtime = {.tv_sec = r->mtime_sec, .tv_nsec = r->mtime_nsec},
      .rdev = r->rdev,
      /* the root cannot be made again as another directory whose attributes differ is: its own the snapshot lacks go;
       * an 'M' never changes an inode linked from elsewhere too (the plan replaces those; one linked since, refused) */
      .flags = (strcmp(r->rel, ".") == 0 ? 2 : 0) | (r->action == 'M' ? 4 : 0),
      .xattrs_hex = r->xattrs_hex,
  };
  struct velo_err err;
  if (velo_meta_apply(root, &m, do_chown, &err) < 0) fail(&err);
}

static void apply_segment(struct segment *s) {
  uint64_t rm = 0, wr = 0, mo = 0;
  for (size_t i = 0; i < s->n; i++) {
    struct rec *r = &s->v[i];
    char t = type_of(r->mode);
    if (r->action != 'D' && !t) converge_die(r->rel, EINVAL); /* a type the snapshot cannot have: nothing removed */
    if (r->action == 'D' || r->action == 'R') remove_path(r);
    if (r->action == 'D') {
      rm++;
      continue;
    }
    if (r->action == 'C' || r->action == 'R') {
      wr++;
      if (t == 'f' && r->group[0]) {
        pthread_mutex_lock(&lock);
        push(&later_links, &n_links, &cap_links, r);
        pthread_mutex_unlock(&lock);
        continue; /* made, with its metadata, once every segment is */
      }
      const char *base;
      int pfd = t == 'd' || t == 'l' ? parent_of(r, &base) : -1;
      if (t == 'd' && mkdirat(pfd, base, 0700) < 0) converge_die(r->rel, errno);
      if (t == 'l') {
        size_t n = strlen(r->target_hex) / 2;
        char target[4097];
        if (n >= sizeof target) converge_die(r->rel, ENAMETOOLONG);
        for (size_t k = 0; k < n; k++) {
          unsigned v;
          if (sscanf(r->target_hex + 2 * k, "%2x", &v) != 1) converge_die(r->rel, EINVAL);
          target[k] = (char)v;
        }
        target[n] = 0;
        if (symlinkat(target, pfd, base) < 0) converge_die(r->rel, errno);
      }
      if (pfd >= 0) close(pfd);
      if (t == 'f') make_file(r);
      /* a fifo or a device node: velo_meta_apply makes it */
    } else if (r->action == 'M')
      mo++;
    else
      converge_die("plan: unknown action", EINVAL);
    if (t == 'd') {
      pthread_mutex_lock(&lock);
      push(&later_dirs, &n_dirs, &cap_dirs, r);
      pthread_mutex_unlock(&lock);
    } else
      set_meta(r);
  }
  pthread_mutex_lock(&lock);
  removed += rm, written += wr, meta_only += mo;
  pthread_mutex_unlock(&lock);
}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&lock);
    struct segment *s = next_segment < n_segments ? &segments[next_segment++] : NULL;
    pthread_mutex_unlock(&lock);
    if (!s) return NULL;
    apply_segment(s);
  }
}

static int depth(const struct rec *r) {
  if (!strcmp(r->rel, ".")) return -1; /* the root last */
  int d = 0;
  for (const char *p = r->rel; *p; p++) d += *p == '/';
  return d;
}
static int deepest_first(const void *a, const void *b) {
  int da = depth(*(struct rec *const *)a), db = depth(*(struct rec *const *)b);
  return da != db ? db - da : 0;
}
static int by_group(const void *a, const void *b) {
  const struct rec *ra = *(struct rec *const *)a, *rb = *(struct rec *const *)b;
  int c = strcmp(ra->group, rb->group);
  return c ? c : ra < rb ? -1 : ra > rb; /* then plan order (records of one segment lie in order in memory) */
}

/* one record's 13 fields from BUF at *POS (each ends in a NUL) */
static void parse_rec(char *buf, size_t end, size_t *pos, struct rec *r) {
  char *f[FIELDS];
  for (int i = 0; i < FIELDS; i++) {
    char *z = memchr(buf + *pos, 0, end - *pos);
    if (!z) converge_die("plan: truncated record", EINVAL);
    f[i] = buf + *pos;
    *pos = (size_t)(z - buf) + 1;
  }
  r->action = f[0][0];
  r->rel = f[1];
  r->mode = (mode_t)strtoul(f[2], NULL, 10);
  r->uid = (uid_t)strtoul(f[3], NULL, 10);
  r->gid = (gid_t)strtoul(f[4], NULL, 10);
  r->mtime_sec = strtoll(f[5], NULL, 10);
  r->mtime_nsec = strtol(f[6], NULL, 10);
  r->rdev = (dev_t)strtoull(f[7], NULL, 10);
  r->object = f[8];
  r->target_hex = f[9];
  r->xattrs_hex = f[10];
  r->group = f[11];
  r->size = strtoull(f[12], NULL, 10);
}

int converge_apply(int argc, char **argv) {
  if (argc < 4 || (argc == 5 && strcmp(argv[4], "--no-chown")) || argc > 5) {
    fprintf(stderr, "usage: velo-converge --apply DIR PLAN [--no-chown]\n");
    return 2;
  }
  do_chown = argc < 5;
  root = open(argv[2], O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) converge_die(argv[2], errno);
  /* the plan, whole, in memory: records point into it */
  int pf = open(argv[3], O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (pf < 0 || fstat(pf, &st) < 0) converge_die(argv[3], errno);
  size_t len = (size_t)st.st_size;
  char *buf = malloc(len + 1);
  if (!buf) converge_die("out of memory", ENOMEM);
  for (size_t got = 0; got < len;) {
    ssize_t n = read(pf, buf + got, len - got);
    if (n <= 0) converge_die(argv[3], n < 0 ? errno : EIO);
    got += (size_t)n;
  }
  close(pf);
  size_t cap = 0;
  for (size_t pos = 0; pos < len;) {
    if (len - pos < 8) converge_die("plan: truncated segment", EINVAL);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | (uint8_t)buf[pos + (size_t)i];
    pos += 8;
    if (n > len - pos) converge_die("plan: truncated segment", EINVAL);
    size_t end = pos + (size_t)n;
    if (n_segments == cap) {
      cap = cap ? 2 * cap : 64;
      if (!(segments = realloc(segments, cap * sizeof *segments))) converge_die("out of memory", ENOMEM);
    }
    struct segment *s = &segments[n_segments++];
    s->v = NULL, s->n = 0;
    size_t rcap = 0;
    while (pos < end) {
      if (s->n == rcap) {
        rcap = rcap ? 2 * rcap : 64;
        if (!(s->v = realloc(s->v, rcap * sizeof *s->v))) converge_die("out of memory", ENOMEM);
      }
      parse_rec(buf, end, &pos, &s->v[s->n++]);
    }
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int n_threads = cpus < 1 ? 1 : cpus > MAX_APPLY_THREADS ? MAX_APPLY_THREADS : (int)cpus;
  pthread_t th[MAX_APPLY_THREADS];
  for (int i = 1; i < n_threads; i++)
    if ((errno = pthread_create(&th[i], NULL, worker, NULL)) != 0) converge_die("pthread_create", errno);
  worker(NULL);
  for (int i = 1; i < n_threads; i++) pthread_join(th[i], NULL);

  /* hard-link groups: the first path of each gets the object and the metadata (one inode: the group's) */
  qsort(later_links, n_links, sizeof *later_links, by_group);
  for (size_t i = 0; i < n_links;) {
    struct rec *first = later_links[i];
    make_file(first);
    set_meta(first);
    const char *fbase;
    int ffd = parent_of(first, &fbase);
    for (i++; i < n_links && !strcmp(later_links[i]->group, first->group); i++) {
      const char *base;
      int pfd = parent_of(later_links[i], &base);
      if (linkat(ffd, fbase, pfd, base, 0) < 0) converge_die(later_links[i]->rel, errno);
      close(pfd);
    }
    close(ffd);
  }
  qsort(later_dirs, n_dirs, sizeof *later_dirs, deepest_first);
  for (size_t i = 0; i < n_dirs; i++) set_meta(later_dirs[i]);
  printf("%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", removed, written, meta_only);
  return fflush(stdout) == 0 ? 0 : 1;
}
