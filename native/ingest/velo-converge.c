/* velo-converge: what must change in a directory to make it equal to a layer, or to a stack of them (`velo volume
 * restore`; a volume snapshot stored as a delta is its base's layers and its own, docs/volumes.md), and then that
 * change made (converge-apply.c). Two passes, so the caller can act between them (make the cold objects the plan
 * copies plain, write its marker) before the first change:
 *
 *   velo-converge HOME LAYER[,LAYER...] DIR INDEX INDEX_OUT PLAN      (layers bottom first, as an image lists them)
 *   velo-converge --apply DIR PLAN [--no-chown]
 *
 * Walks DIR (no symlink followed; directories opened relative to their parent with O_NOFOLLOW) and the layer's
 * tree side by side, names in bytewise order, and writes the plan; it changes nothing in DIR. A regular file is
 * kept only when its stat fingerprint matches its record in INDEX (fpindex.h: its content is known without
 * reading it) and content, size, owner and mode equal the layer's; everything it cannot prove equal is replaced.
 * INDEX_OUT lists every entry the tree will have once the plan is applied (fpindex.h, COMPLETE): what the plan keeps as
 * it is, vouched for (a file with its content's hash); what it makes, replaces or sets the metadata of, as present
 * only (the next snapshot reads it again). An index of LAYERS, on which the next snapshot can be a delta.
 * The plan goes to PLAN, in segments (below); stdout gets the store objects its copies need that are not plain files
 * now (cold ones, src/store/cold.ts), each path ended by a NUL. One record per path, 13 fields each ending in NUL:
 *   action  relpath  st_mode  uid  gid  mtime_sec  mtime_nsec  rdev  object-path  hex(symlink target)
 *   hex(xattr block)  link-group  size
 * action: 'D' remove the path (and all below it), 'C' create it (absent), 'R' remove then create, 'M' set its
 * metadata (owner, mode, mtime, xattrs; a directory whose contents changed gets one after them). Parents come
 * before their children; 'M' of a directory after them. link-group: "L:INO", the layer (its place in the stack,
 * top 0) and its inode number there, for files with nlink > 1 (the apply pass links later members to the first),
 * else empty: a hard-link group lives in one layer.
 * Subtrees down to SPLIT_DEPTH are planned on up to MAX_THREADS threads (one per CPU), each with its own read
 * transaction and its own output and index buffers, written out at the end, each subtree's records as one segment
 * of PLAN (a u64 little-endian byte count, then the records): a subtree's records only ever concern paths inside it
 * (its directory exists on both sides), so segments can be applied side by side, while inside each the order above
 * holds.
 * Exit 0; or "velo-converge: what: why" on stderr and exit 1. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include "../common/manifest.h"
#include "dirlist.h"
#include "records.h"
#include "fpindex.h"
#include "converge.h"
#include "../common/caller.h"

#define SPLIT_DEPTH 3
#define MAX_THREADS 4

static struct velo_store store;
static struct velo_view view;
static struct fpindex index_in;
static struct fpindex_writer index_out;
static int writing_index;
static int n_threads = 1;
/* each thread's: read transaction, plan buffer, index records of the files it keeps */
static __thread MDB_txn *txn;
static __thread FILE *out;
static __thread FILE *absent; /* the objects its copies need that are not plain files now (cold ones) */
static __thread struct fpindex_writer *kept;

static pthread_mutex_t die_lock = PTHREAD_MUTEX_INITIALIZER;
static void die_with(const char *what, int e, int status) __attribute__((noreturn));
static void die_with(const char *what, int e, int status) {
  pthread_mutex_lock(&die_lock); /* the first to fail reports and exits; never unlocked */
  /* other threads may be writing: the temp index goes by name, and _exit flushes no stream under their feet */
  if (writing_index) unlink(index_out.tmp);
  fprintf(stderr, "velo-converge: %s%s%s\n", what, e ? ": " : "", e ? strerror(e) : "");
  _exit(status);
}

void converge_die(const char *what, int e) {
  die_with(what, e,
           e == ENOSPC || e == EDQUOT ? CONVERGE_EXIT_NO_SPACE
           : e == EACCES || e == EPERM ? CONVERGE_EXIT_PERMISSION
                                       : CONVERGE_EXIT_OTHER);
}

void converge_die_integrity(const char *what) { die_with(what, 0, CONVERGE_EXIT_INTEGRITY); }

static void emit(char action, const char *rel, const struct velo_entry *e, int layer) {
  rec_field(out, &action, 1);
  rec_str(out, rel);
  if (!e) {
    for (int i = 0; i < 11; i++) fputc(0, out);
    return;
  }
  rec_i64(out, e->mode);
  rec_i64(out, e->uid);
  rec_i64(out, e->gid);
  rec_i64(out, e->mtime_sec);
  rec_i64(out, e->mtime_nsec);
  rec_i64(out, (int64_t)e->rdev);
  char obj[4096] = "";
  if (S_ISREG(e->mode) && e->size > 0 && velo_object_path(&store, e, obj, sizeof obj) < 0) converge_die(rel, ENAMETOOLONG);
  rec_str(out, obj);
  if (obj[0] && action != 'M' && access(obj, F_OK) < 0) rec_str(absent, obj);
  rec_hex(out, e->target ? e->target : "", e->target ? e->target_len : 0);
  rec_hex(out, e->xattrs ? e->xattrs : "", e->xattrs ? e->xattrs_len : 0);
  if (S_ISREG(e->mode) && e->nlink > 1) {
    char g[32];
    snprintf(g, sizeof g, "%d:%" PRIu32, layer, e->ino);
    rec_str(out, g);
  } else
    rec_str(out, "");
  rec_i64(out, (int64_t)e->size);
}

/* One directory's children as the layer has them (names copied: the cursor moves on). */
struct child {
  char *name;
  struct velo_entry e;
  int layer; /* the layer it comes from (top 0) */
};
struct children {
  struct child *v;
  size_t n, cap;
};
static int collect(void *ctx, const char *name, size_t len, const struct velo_entry *e, int layer) {
  struct children *c = ctx;
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 16;
    c->v = realloc(c->v, c->cap * sizeof *c->v);
    if (!c->v) converge_die("out of memory", ENOMEM);
  }
  char *n = malloc(len + 1);
  if (!n) converge_die("out of memory", ENOMEM);
  memcpy(n, name, len);
  n[len] = 0;
  c->v[c->n].name = n;
  c->v[c->n].e = *e;
  c->v[c->n].layer = layer;
  c->n++;
  return 0;
}
static void layer_children(const struct velo_dir *d, struct children *c) {
  struct velo_err err;
  memset(c, 0, sizeof *c);
  if (velo_view_readdir(txn, &view, d, collect, c, &err) != 0) converge_die(err.msg, 0);
}
static void free_children(struct children *c) {
  for (size_t i = 0; i < c->n; i++) free(c->v[i].name);
  free(c->v);
}

static size_t join(char *rel, size_t rlen, const char *name) {
  size_t nl = strlen(name), at = rlen;
  if (rlen + nl + 2 >= 65536) converge_die("path too long", ENAMETOOLONG);
  if (rlen) rel[at++] = '/';
  memcpy(rel + at, name, nl + 1);
  return at + nl;
}

static void sub_dir(const struct velo_dir *d, const char *name, struct velo_dir *sub) {
  struct velo_err err;
  struct velo_entry e;
  if (velo_view_lookup(txn, &view, d, name, strlen(name), &e, sub, NULL, &err) != 1) converge_die(err.msg, 0);
}

static void create_entry(const struct velo_dir *d, const struct child *ch, char *rel, size_t rlen);
static void ix_entry(const char *rel, size_t len, const struct stat *st, uint32_t mode);

/* Everything below layer dir D as 'C' (the path does not exist on disk). */
static void create_all(const struct velo_dir *d, char *rel, size_t rlen) {
  struct children c;
  layer_children(d, &c);
  for (size_t i = 0; i < c.n; i++) create_entry(d, &c.v[i], rel, rlen);
  free_children(&c);
}

/* Child CH of layer dir D (at REL) as 'C', and everything below it. */
static void create_entry(const struct velo_dir *d, const struct child *ch, char *rel, size_t rlen) {
  size_t l = join(rel, rlen, ch->name);
  emit('C', rel, &ch->e, ch->layer);
  ix_entry(rel, l, NULL, ch->e.mode);
  if (S_ISDIR(ch->e.mode)) {
    struct velo_dir sub;
    sub_dir(d, ch->name, &sub);
    create_all(&sub, rel, l);
  }
  rel[rlen] = 0;
}

/* INDEX_OUT: REL as the plan leaves it — ST, vouched for, when it keeps it (NULL: made or changed by the plan, present
 * only, with the layer's MODE) */
static void ix_entry(const char *rel, size_t len, const struct stat *st, uint32_t mode) {
  struct stat made;
  if (!st) {
    memset(&made, 0, sizeof made);
    made.st_mode = mode;
  }
  if (fpindex_writer_seen(kept, rel, len, st ? st : &made, st != NULL) < 0) converge_die("write index", errno);
}

static int same_meta(const struct stat *st, const struct velo_entry *e, int with_mtime) {
  return (st->st_mode & 07777) == (e->mode & 07777) && st->st_uid == e->uid && st->st_gid == e->gid &&
         (!with_mtime || (st->st_mtim.tv_sec == e->mtime_sec && (uint32_t)st->st_mtim.tv_nsec == e->mtime_nsec));
}

static int has_xattrs_at(int dfd, const char *name) {
  char p[4200];
  snprintf(p, sizeof p, "/proc/self/fd/%d/%s", dfd, name);
  ssize_t n = llistxattr(p, NULL, 0);
  return n != 0; /* an error counts as "may have some": replaced */
}

/* A subtree planned on its own: directory REL (open as dfd) exists on both sides as a directory without xattrs;
 * its 'M' (when names in it change, or its own metadata differs from the layer's) is the task's to emit. */
struct task {
  int dfd;
  struct velo_dir d;
  char *rel;
  size_t rlen;
  struct stat st;
  struct velo_entry e; /* a directory's: no pointers into the map are used (no target, no xattrs) */
  int root;
  char *plan, *ix, *absent; /* its output, its kept files' index records, objects its copies need that are absent */
  size_t plan_len, ix_len, absent_len;
  uint64_t ix_count;
  struct task *next_done;
};
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static struct task **queue;
static size_t q_len, q_cap, q_busy; /* queued; being planned */
static struct task *done_list;

static void push_task(struct task *t) {
  pthread_mutex_lock(&q_lock);
  if (q_len == q_cap) {
    q_cap = q_cap ? 2 * q_cap : 64;
    queue = realloc(queue, q_cap * sizeof *queue);
    if (!queue) converge_die("out of memory", ENOMEM);
  }
  queue[q_len++] = t;
  pthread_cond_signal(&q_cond);
  pthread_mutex_unlock(&q_lock);
}

static int converge(int dfd, const struct velo_dir *d, char *rel, size_t rlen);
static int same_meta(const struct stat *st, const struct velo_entry *e, int with_mtime);

static int root_fd = -1;

static void run_task(struct task *t) {
  static __thread char rel[65536];
  if (t->dfd < 0 && (t->dfd = open_dir_beneath(root_fd, t->rel)) < 0) converge_die(t->rel, errno);
  FILE *plan = open_memstream(&t->plan, &t->plan_len);
  absent = open_memstream(&t->absent, &t->absent_len);
  struct fpindex_writer w = index_out; /* its cutoff; records go to a buffer */
  w.count = 0;
  w.f = open_memstream(&t->ix, &t->ix_len);
  if (!plan || !w.f || !absent) converge_die("out of memory", ENOMEM);
  out = plan;
  kept = &w;
  memcpy(rel, t->rel, t->rlen + 1);
  int below = converge(t->dfd, &t->d, rel, t->rlen);
  /* the root is not made again when its attributes differ (another directory is, 'R'): an 'M' sets them exactly */
  int root_xattrs = t->root && flistxattr(t->dfd, NULL, 0) != 0;
  close(t->dfd);
  int m = t->root ? below || !same_meta(&t->st, &t->e, 1) || t->e.xattrs || root_xattrs : below || !same_meta(&t->st, &t->e, 1);
  if (m) emit('M', t->root ? "." : rel, &t->e, 0);
  ix_entry(t->root ? "." : rel, t->root ? 1 : t->rlen, m ? NULL : &t->st, t->e.mode);
  if (fclose(plan) != 0 || fclose(w.f) != 0 || fclose(absent) != 0) converge_die("out of memory", ENOMEM);
  t->ix_count = w.count;
  out = NULL;
  kept = NULL;
}

static void *worker(void *arg) {
  (void)arg;
  struct velo_err err;
  if (velo_txn_begin(&store, &txn, &err) < 0) converge_die(err.msg, 0);
  pthread_mutex_lock(&q_lock);
  for (;;) {
    if (q_len) {
      struct task *t = queue[--q_len];
      q_busy++;
      pthread_mutex_unlock(&q_lock);
      run_task(t);
      pthread_mutex_lock(&q_lock);
      q_busy--;
      t->next_done = done_list;
      done_list = t;
      if (!q_len && !q_busy) pthread_cond_broadcast(&q_cond); /* all planned: everyone leaves */
      continue;
    }
    if (!q_busy) break;
    pthread_cond_wait(&q_cond, &q_lock);
  }
  pthread_mutex_unlock(&q_lock);
  velo_txn_end(&store, txn);
  return NULL;
}

/* Hand directory REL to another thread when it is shallow enough to be worth it (and there are threads). */
static int split(int sfd, const struct velo_dir *sub, const char *rel, size_t l, const struct stat *st, const struct velo_entry *e) {
  if (n_threads < 2) return 0;
  int depth = 1;
  for (size_t i = 0; i < l; i++) depth += rel[i] == '/';
  if (depth > SPLIT_DEPTH) return 0;
  struct task *t = calloc(1, sizeof *t);
  if (!t || !(t->rel = strdup(rel))) converge_die("out of memory", ENOMEM);
  close(sfd); /* opened again by the thread that takes it */
  t->dfd = -1;
  t->d = *sub;
  t->rlen = l;
  t->st = *st;
  t->e = *e;
  t->e.target = NULL, t->e.target_len = 0, t->e.xattrs = NULL, t->e.xattrs_len = 0;
  push_task(t);
  return 1;
}

/* Compare disk dir DFD (at REL) with layer dir D; returns 1 when names in it are planned to be removed or made
 * (which moves its mtime: it needs an 'M' after them). */
static int converge(int dfd, const struct velo_dir *d, char *rel, size_t rlen) {
  struct dirlist dl;
  if (dirlist_read(dfd, &dl) < 0) converge_die(rel[0] ? rel : ".", errno);
  size_t n = dl.n;
  struct children c;
  layer_children(d, &c);
  int changed = 0;
  size_t j = 0;
  for (size_t i = 0; i <= n; i++) {
    const char *nm = i < n ? dl.names[i] : NULL;
    /* layer names before this disk name: absent on disk */
    for (; j < c.n && (!nm || strcmp(c.v[j].name, nm) < 0); j++) {
      create_entry(d, &c.v[j], rel, rlen);
      changed = 1;
    }
    if (!nm) break;
    size_t l = join(rel, rlen, nm);
    if (j >= c.n || strcmp(c.v[j].name, nm) != 0) {
      emit('D', rel, NULL, 0); /* not in the layer */
      changed = 1;
      rel[rlen] = 0;
      continue;
    }
    const struct velo_entry *e = &c.v[j].e;
    int elayer = c.v[j].layer;
    j++;
    struct stat st;
    if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0) converge_die(rel, errno);
    char action = 0; /* 0 keep, 'M', 'R' */
    int indexed = 0;  /* its index record written where the decision was made (a directory kept, a file kept) */
    if ((st.st_mode & S_IFMT) != (e->mode & S_IFMT)) {
      action = 'R';
    } else if (S_ISDIR(st.st_mode)) {
      int sfd = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sfd < 0) converge_die(rel, errno);
      if (e->xattrs || flistxattr(sfd, NULL, 0) != 0) {
        close(sfd);
        action = 'R'; /* xattrs to remove or to set on a dir: recreated with all below it */
      } else {
        struct velo_dir sub;
        sub_dir(d, nm, &sub);
        if (!split(sfd, &sub, rel, l, &st, e)) {
          int below = converge(sfd, &sub, rel, l);
          close(sfd);
          int m = below || !same_meta(&st, e, 1);
          if (m) emit('M', rel, e, elayer); /* its mtime moved, or never was the layer's */
          ix_entry(rel, l, m ? NULL : &st, e->mode);
        } /* a split one: its task writes its 'M' and its index record */
        action = 0; /* its own entry stays: the parent's mtime does not move */
        indexed = 1;
      }
    } else if (S_ISREG(st.st_mode)) {
      indexed = 1; /* below: kept with its content, as present, or made again */
      const uint8_t *known = st.st_nlink == 1 && e->nlink <= 1 && !e->xattrs ? fpindex_lookup(&index_in, rel, l, &st) : NULL;
      if (st.st_size == 0 && e->size == 0 && st.st_nlink == 1 && e->nlink <= 1 && !e->xattrs && !has_xattrs_at(dfd, nm)) {
        action = same_meta(&st, e, 1) ? 0 : 'M';
        if (!action) ix_entry(rel, l, &st, e->mode);
      }
      else if (!known || (uint64_t)st.st_size != e->size || memcmp(known, e->hash, 32) != 0)
        action = 'R';
      else {
        action = same_meta(&st, e, 1) ? 0 : 'M';
        /* kept with its content: still indexed (a chmod/chown/utimes by the plan changes its ctime anyway) */
        if (!action && fpindex_writer_add(kept, rel, l, &st, known) < 0) converge_die("write index", errno);
      }
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t tl = readlinkat(dfd, nm, target, sizeof target);
      if (tl < 0) converge_die(rel, errno);
      /* a link to it from elsewhere (st_nlink > 1) is replaced rather than given the layer's owner: that inode is
       * not only this volume's */
      if ((size_t)tl != e->target_len || memcmp(target, e->target, (size_t)tl) != 0 || e->xattrs || st.st_nlink > 1 || has_xattrs_at(dfd, nm))
        action = 'R';
      else if (st.st_uid != e->uid || st.st_gid != e->gid || st.st_mtim.tv_sec != e->mtime_sec || (uint32_t)st.st_mtim.tv_nsec != e->mtime_nsec)
        action = 'M';
    } else {
      /* fifo, device, socket */
      if (st.st_rdev != e->rdev || e->xattrs || st.st_nlink > 1 || has_xattrs_at(dfd, nm))
        action = 'R';
      else if (!same_meta(&st, e, 1))
        action = 'M';
    }
    if (action == 'R') {
      emit('R', rel, e, elayer);
      if (S_ISDIR(e->mode)) {
        struct velo_dir sub;
        sub_dir(d, nm, &sub);
        create_all(&sub, rel, l);
      }
    } else if (action == 'M' && !S_ISDIR(st.st_mode))
      emit('M', rel, e, elayer);
    if (action) ix_entry(rel, l, NULL, e->mode);
    else if (!indexed) ix_entry(rel, l, &st, e->mode); /* a symlink, fifo or device kept */
    if (action == 'R') changed = 1; /* a name removed and made: this dir's mtime moves */
    rel[rlen] = 0;
  }
  dirlist_free(&dl);
  free_children(&c);
  return changed;
}

int main(int argc, char **argv) {
  /* the caller holds the volume's lock while we run: its death (the lock gone) must end us, never leave us writing */
  if (velo_bind_to_caller() < 0) converge_die("the caller is gone", 0);
  if (argc > 1 && !strcmp(argv[1], "--apply")) return converge_apply(argc, argv);
  if (argc != 7) {
    fprintf(stderr, "usage: velo-converge HOME LAYER[,LAYER...] DIR INDEX INDEX_OUT PLAN\n       velo-converge --apply DIR PLAN [--no-chown]\n");
    return 2;
  }
  /* the stack, top first for the view */
  const char *layers[64];
  int n_layers = 0;
  for (char *p = argv[2], *comma; p; p = comma ? comma + 1 : NULL) {
    if ((comma = strchr(p, ','))) *comma = 0;
    if (n_layers == 64) converge_die("too many layers (at most 64)", E2BIG);
    layers[n_layers++] = p;
  }
  for (int i = 0; i < n_layers / 2; i++) {
    const char *t = layers[i];
    layers[i] = layers[n_layers - 1 - i], layers[n_layers - 1 - i] = t;
  }
  struct timespec started;
  clock_gettime(CLOCK_REALTIME, &started);
  struct velo_err err;
  if (velo_store_open(&store, argv[1], &err) < 0) converge_die(err.msg, 0);
  if (velo_view_init(&view, &store, layers, n_layers, &err) < 0) converge_die(err.msg, 0);
  struct task *root = calloc(1, sizeof *root);
  if (!root || !(root->rel = strdup(""))) converge_die("out of memory", ENOMEM);
  root->root = 1;
  {
    MDB_txn *t0;
    if (velo_txn_begin(&store, &t0, &err) < 0) converge_die(err.msg, 0);
    if (velo_view_root(t0, &view, &root->d, &root->e, &err) < 0) converge_die(err.msg, 0);
    /* the root's xattr block points into the map, valid only in this transaction: a copy, for its 'M' */
    if (root->e.xattrs) {
      void *x = malloc(root->e.xattrs_len ? root->e.xattrs_len : 1);
      if (!x) converge_die("out of memory", ENOMEM);
      memcpy(x, root->e.xattrs, root->e.xattrs_len);
      root->e.xattrs = x;
    }
    velo_txn_end(&store, t0);
  }
  if (fpindex_load(&index_in, argv[4]) < 0) converge_die(argv[4], errno);
  if (fpindex_writer_open(&index_out, argv[5], &started, 1) < 0) converge_die(argv[5], errno);
  writing_index = 1;
  root_fd = open(argv[3], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) converge_die(argv[3], errno);
  if (fstat(root_fd, &root->st) < 0) converge_die(argv[3], errno);
  root->dfd = dup(root_fd); /* the task closes its own; root_fd stays for the subtrees' opens */
  if (root->dfd < 0) converge_die("dup", errno);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  n_threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
  push_task(root);
  pthread_t th[MAX_THREADS];
  for (int i = 1; i < n_threads; i++)
    if ((errno = pthread_create(&th[i], NULL, worker, NULL)) != 0) converge_die("pthread_create", errno);
  worker(NULL);
  for (int i = 1; i < n_threads; i++) pthread_join(th[i], NULL);
  /* every subtree's plan (a segment: its byte count, u64 little-endian, then its records), the objects absent, then
   * the index of the files kept */
  FILE *plan = fopen(argv[6], "we");
  if (!plan) converge_die(argv[6], errno);
  setvbuf(plan, NULL, _IOFBF, 1 << 20);
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  for (struct task *t = done_list; t; t = t->next_done) {
    uint8_t n[8];
    for (int i = 0; i < 8; i++) n[i] = (uint8_t)((uint64_t)t->plan_len >> (8 * i));
    if (t->plan_len && (fwrite(n, 1, 8, plan) != 8 || fwrite(t->plan, 1, t->plan_len, plan) != t->plan_len)) converge_die(argv[6], errno);
    if (t->absent_len && fwrite(t->absent, 1, t->absent_len, stdout) != t->absent_len) converge_die("stdout", errno);
    if (t->ix_len && fwrite(t->ix, 1, t->ix_len, index_out.f) != t->ix_len) converge_die(argv[5], errno);
    index_out.count += t->ix_count;
  }
  if (fclose(plan) != 0) converge_die(argv[6], errno);
  if (fflush(stdout) != 0) converge_die("stdout", errno);
  if (fpindex_writer_commit(&index_out) < 0) converge_die(argv[5], errno);
  writing_index = 0;
  velo_store_close(&store);
  return 0;
}
