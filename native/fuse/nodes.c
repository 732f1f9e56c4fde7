/* The inode table. The kernel names a node by the id we hand out in lookup (here: the node's address; the
 * root is FUSE_ROOT_ID) and holds nlookup references on it until forget. Nodes are keyed by their st_ino,
 * which is deterministic — (layer index << 32) | layer-local ino of the uppermost entry — so every path has
 * its own inode number, two paths share one only when they are hard links inside one layer, and a path
 * looked up again after a forget gets the same number back. */
#include <stdlib.h>
#include <string.h>
#include "velo_fuse.h"

static size_t bucket_of(uint64_t ino, size_t n) {
  uint64_t h = ino * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 17) & (n - 1);
}

int nodes_init(struct node_table *t, struct vnode *root, struct velo_err *err) {
  memset(t, 0, sizeof *t);
  pthread_mutex_init(&t->lock, NULL);
  t->nbuckets = 1024;
  t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
  if (!t->buckets) return velo_fail(err, ENOMEM, "node table");
  t->root = root;
  root->nlookup = 1; /* the root is never forgotten */
  root->hnext = NULL;
  t->buckets[bucket_of(root->ino, t->nbuckets)] = root;
  t->count = 1;
  return 0;
}

void vnode_free(struct vnode *n) {
  if (!n) return;
  free(n->target);
  free((void *)n->e.xattrs);
  free(n->dir);
  free(n);
}

void nodes_destroy(struct node_table *t) {
  for (size_t i = 0; i < t->nbuckets; i++)
    for (struct vnode *n = t->buckets[i], *next; n; n = next) {
      next = n->hnext;
      vnode_free(n);
    }
  free(t->buckets);
  pthread_mutex_destroy(&t->lock);
}

static void grow(struct node_table *t) {
  size_t nb = t->nbuckets * 2;
  struct vnode **b = calloc(nb, sizeof *b);
  if (!b) return; /* keep the old table: slower, still correct */
  for (size_t i = 0; i < t->nbuckets; i++)
    for (struct vnode *n = t->buckets[i], *next; n; n = next) {
      next = n->hnext;
      size_t k = bucket_of(n->ino, nb);
      n->hnext = b[k];
      b[k] = n;
    }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = nb;
}

static struct vnode *find_locked(struct node_table *t, uint64_t ino) {
  for (struct vnode *n = t->buckets[bucket_of(ino, t->nbuckets)]; n; n = n->hnext)
    if (n->ino == ino) return n;
  return NULL;
}

struct vnode *nodes_get(struct node_table *t, uint64_t ino) {
  pthread_mutex_lock(&t->lock);
  struct vnode *n = find_locked(t, ino);
  if (n) n->nlookup++;
  pthread_mutex_unlock(&t->lock);
  return n;
}

struct vnode *nodes_insert(struct node_table *t, struct vnode *n) {
  pthread_mutex_lock(&t->lock);
  struct vnode *old = find_locked(t, n->ino);
  if (old) {
    old->nlookup++;
    pthread_mutex_unlock(&t->lock);
    vnode_free(n);
    return old;
  }
  if (t->count >= t->nbuckets) grow(t);
  size_t k = bucket_of(n->ino, t->nbuckets);
  n->nlookup = 1;
  n->hnext = t->buckets[k];
  t->buckets[k] = n;
  t->count++;
  pthread_mutex_unlock(&t->lock);
  return n;
}

void nodes_forget(struct node_table *t, struct vnode *n, uint64_t nlookup) {
  if (n == t->root) return;
  pthread_mutex_lock(&t->lock);
  if (n->nlookup > nlookup) {
    n->nlookup -= nlookup;
    pthread_mutex_unlock(&t->lock);
    return;
  }
  struct vnode **pp = &t->buckets[bucket_of(n->ino, t->nbuckets)];
  while (*pp && *pp != n) pp = &(*pp)->hnext;
  if (*pp) *pp = n->hnext;
  t->count--;
  pthread_mutex_unlock(&t->lock);
  vnode_free(n);
}

struct vnode *vnode_new(const struct velo_entry *e, int layer, const struct velo_dir *dir, uint64_t parent_ino) {
  struct vnode *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->ino = (uint64_t)layer << 32 | e->ino;
  n->parent_ino = parent_ino;
  n->e = *e;
  n->e.target = NULL;
  n->e.target_len = 0;
  n->e.xattrs = NULL; /* the entry's block lives in the LMDB map only while the txn does: keep a copy */
  if (e->xattrs) {
    void *x = malloc(e->xattrs_len);
    if (!x) {
      vnode_free(n);
      return NULL;
    }
    memcpy(x, e->xattrs, e->xattrs_len);
    n->e.xattrs = x;
  }
  if ((e->mode & S_IFMT) == S_IFLNK) {
    n->target = malloc(e->target_len + 1);
    if (!n->target) {
      vnode_free(n);
      return NULL;
    }
    if (e->target_len) memcpy(n->target, e->target, e->target_len);
    n->target[e->target_len] = 0;
    n->e.target_len = e->target_len;
  }
  if (dir) {
    size_t sz = offsetof(struct velo_dir, at) + (size_t)(dir->n ? dir->n : 1) * sizeof dir->at[0];
    n->dir = malloc(sz);
    if (!n->dir) {
      vnode_free(n);
      return NULL;
    }
    memcpy(n->dir, dir, offsetof(struct velo_dir, at) + (size_t)dir->n * sizeof dir->at[0]);
  }
  return n;
}
