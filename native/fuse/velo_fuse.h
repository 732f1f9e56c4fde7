/* velo-fuse: shared declarations of the daemon's parts.
 *   main.c    process: arguments, store, session, mount, signals, loop
 *   ops.c     the FUSE low-level operations (read-only)
 *   nodes.c   the inode table: FUSE node id <-> merged-view entry
 *   fdcache.c bounded LRU cache of open CAS object descriptors */
#ifndef VELO_FUSE_H
#define VELO_FUSE_H
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include "manifest.h"

/* A merged directory's contributing layers, allocated to its exact size (same layout as struct velo_dir's
 * prefix, so it can be passed wherever a const struct velo_dir * is read). */
struct vnode {
  uint64_t ino;        /* st_ino: (layer index << 32) | layer-local ino of the uppermost entry */
  uint64_t nlookup;    /* kernel references (guarded by the table lock) */
  uint64_t parent_ino; /* st_ino of the directory it was found in (for "..") */
  struct velo_entry e; /* e.target is not used after creation: see target */
  char *target;        /* symlink target, NUL-terminated copy */
  struct velo_dir *dir; /* directories: contributing layers; NULL otherwise */
  int pt_id, pt_opens;  /* passthrough backing id shared by the node's open files, and how many (fs->pt_lock) */
  int traced;           /* its first open was written to --trace (atomic) */
  struct vnode *hnext;
};

struct node_table {
  pthread_mutex_t lock;
  struct vnode **buckets;
  size_t nbuckets, count;
  struct vnode *root;
};

int nodes_init(struct node_table *t, struct vnode *root, struct velo_err *err);
void nodes_destroy(struct node_table *t);
/* Insert N, or if a node with N's ino exists already, free N and return that one; either way nlookup++. */
struct vnode *nodes_insert(struct node_table *t, struct vnode *n);
/* The node with this ino, nlookup++ (NULL if none). */
struct vnode *nodes_get(struct node_table *t, uint64_t ino);
void nodes_forget(struct node_table *t, struct vnode *n, uint64_t nlookup);
void vnode_free(struct vnode *n);
/* Build a node from an entry found in LAYER (copies the symlink target and the directory's layers). */
struct vnode *vnode_new(const struct velo_entry *e, int layer, const struct velo_dir *dir, uint64_t parent_ino);

struct fdc_ent;
struct fd_cache {
  pthread_mutex_t lock;
  struct fdc_ent **buckets;
  size_t nbuckets, count, max;
  struct fdc_ent *mru, *lru; /* doubly linked, most recently used first */
  uint64_t opens, hits, evictions;
};

int fdcache_init(struct fd_cache *c, size_t max, struct velo_err *err);
void fdcache_destroy(struct fd_cache *c);
/* A read-only descriptor of the object at PATH holding EXPECT_SIZE bytes, pinned until fdcache_put.
 * < 0 = -errno (EIO when the object's size does not match: the store is damaged, fail closed). */
int fdcache_get(struct fd_cache *c, const char *path, uint64_t expect_size, struct fdc_ent **out);
int fdc_fd(const struct fdc_ent *e);
void fdcache_put(struct fd_cache *c, struct fdc_ent *e);

struct velo_fs {
  struct velo_store store;
  struct velo_view view;
  struct node_table nodes;
  struct fd_cache fds;
  double timeout; /* entry/attr timeout in seconds (the data is immutable) */
  int debug;
  int no_splice; /* read with pread + write instead of splice (VELO_FUSE_NO_SPLICE=1, for comparison) */
  int dev_fd;    /* the session's /dev/fuse descriptor (passthrough ioctls) */
  int passthrough; /* 1 while the kernel accepts backing files; dropped to 0 at the first refusal (pt_lock) */
  pthread_mutex_t pt_lock;
  /* lazy images (lazy.c): objects the CAS lacks are asked of the fetcher on this socket (NULL: not lazy) */
  const char *fetch_socket;
  long long fetch_timeout_ms;
  pid_t fetcher_pid;
  /* --trace FILE: the CAS name of every regular file's object, at its node's first open (velo image profile) */
  int trace_fd;
};

/* lazy.c */
int lazy_start_fetcher(struct velo_fs *fs, char **argv);
void lazy_stop_fetcher(struct velo_fs *fs);
int lazy_fetch(struct velo_fs *fs, const char *path);

extern const struct fuse_lowlevel_ops velo_fuse_ops;

/* passthrough.c: open files read by the kernel from their CAS object (see there). An open reply's fh of
 * (VELO_PT_TAG << 32 | backing id) asks for passthrough; no heap pointer has these upper bits. */
#define VELO_PT_TAG 0x76656c6full
void passthrough_request(int on);
/* Receive and answer the session's FUSE_INIT (sent by the kernel at mount). 1 = the mount can be idmapped
 * (FUSE_ALLOW_IDMAP offered and accepted), 0 = it cannot, < 0 = -errno (the session ended). */
int init_exchange(struct fuse_session *se);
int passthrough_register(int dev_fd, int backing_fd); /* backing id, or -errno */
void passthrough_unregister(int dev_fd, int id);

#endif
