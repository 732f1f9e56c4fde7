/* Bounded LRU cache of open CAS objects. A read pins one descriptor for the duration of one pread/splice;
 * idle descriptors beyond MAX are closed, least recently used first, so an image of a million files never
 * holds more than MAX (+ the reads in flight) descriptors, however many files the kernel keeps open. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "velo_fuse.h"

struct fdc_ent {
  char *path;
  uint64_t hash;
  int fd;
  int refs;
  struct fdc_ent *hnext, *prev, *next;
};

int fdc_fd(const struct fdc_ent *e) { return e->fd; }

static uint64_t fnv(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

int fdcache_init(struct fd_cache *c, size_t max, struct velo_err *err) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->lock, NULL);
  c->max = max ? max : 1;
  c->nbuckets = 64;
  while (c->nbuckets < 2 * c->max) c->nbuckets *= 2;
  c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
  if (!c->buckets) return velo_fail(err, ENOMEM, "fd cache");
  return 0;
}

static void lru_unlink(struct fd_cache *c, struct fdc_ent *e) {
  if (e->prev) e->prev->next = e->next;
  else c->mru = e->next;
  if (e->next) e->next->prev = e->prev;
  else c->lru = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push_front(struct fd_cache *c, struct fdc_ent *e) {
  e->prev = NULL;
  e->next = c->mru;
  if (c->mru) c->mru->prev = e;
  c->mru = e;
  if (!c->lru) c->lru = e;
}

static void hash_unlink(struct fd_cache *c, struct fdc_ent *e) {
  struct fdc_ent **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
  while (*pp && *pp != e) pp = &(*pp)->hnext;
  if (*pp) *pp = e->hnext;
}

static void ent_free(struct fdc_ent *e) {
  if (e->fd >= 0) close(e->fd);
  free(e->path);
  free(e);
}

/* Close idle descriptors, oldest first, until the cache is within bounds. Called with the lock held;
 * returns the entries to free outside the lock (close() can be slow on some filesystems). */
static struct fdc_ent *evict_locked(struct fd_cache *c) {
  struct fdc_ent *victims = NULL;
  for (struct fdc_ent *e = c->lru, *prev; e && c->count > c->max; e = prev) {
    prev = e->prev;
    if (e->refs) continue;
    lru_unlink(c, e);
    hash_unlink(c, e);
    c->count--;
    c->evictions++;
    e->hnext = victims;
    victims = e;
  }
  return victims;
}

static void free_list(struct fdc_ent *v) {
  while (v) {
    struct fdc_ent *n = v->hnext;
    ent_free(v);
    v = n;
  }
}

static struct fdc_ent *find_locked(struct fd_cache *c, const char *path, uint64_t h) {
  for (struct fdc_ent *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
    if (e->hash == h && strcmp(e->path, path) == 0) return e;
  return NULL;
}

int fdcache_get(struct fd_cache *c, const char *path, uint64_t expect_size, struct fdc_ent **out) {
  uint64_t h = fnv(path);
  pthread_mutex_lock(&c->lock);
  struct fdc_ent *e = find_locked(c, path, h);
  if (e) {
    e->refs++;
    c->hits++;
    lru_unlink(c, e);
    lru_push_front(c, e);
    pthread_mutex_unlock(&c->lock);
    *out = e;
    return 0;
  }
  pthread_mutex_unlock(&c->lock);

  /* Open outside the lock: another reader may race us to the same object; the loser closes its copy. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? -EIO : -errno; /* a manifest naming a missing object: damaged store */
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != expect_size) {
    close(fd);
    return -EIO;
  }
  struct fdc_ent *n = calloc(1, sizeof *n);
  if (!n || !(n->path = strdup(path))) {
    free(n);
    close(fd);
    return -ENOMEM;
  }
  n->fd = fd;
  n->hash = h;
  n->refs = 1;

  pthread_mutex_lock(&c->lock);
  c->opens++;
  e = find_locked(c, path, h);
  struct fdc_ent *victims = NULL;
  if (e) {
    e->refs++;
    lru_unlink(c, e);
    lru_push_front(c, e);
  } else {
    size_t k = h & (c->nbuckets - 1);
    n->hnext = c->buckets[k];
    c->buckets[k] = n;
    lru_push_front(c, n);
    c->count++;
    victims = evict_locked(c);
    e = n;
    n = NULL;
  }
  pthread_mutex_unlock(&c->lock);
  if (n) ent_free(n);
  free_list(victims);
  *out = e;
  return 0;
}

void fdcache_put(struct fd_cache *c, struct fdc_ent *e) {
  pthread_mutex_lock(&c->lock);
  e->refs--;
  struct fdc_ent *victims = c->count > c->max ? evict_locked(c) : NULL;
  pthread_mutex_unlock(&c->lock);
  free_list(victims);
}

void fdcache_destroy(struct fd_cache *c) {
  for (struct fdc_ent *e = c->mru, *n; e; e = n) {
    n = e->next;
    ent_free(e);
  }
  free(c->buckets);
  pthread_mutex_destroy(&c->lock);
}
