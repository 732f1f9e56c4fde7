/* velo manifest reader: see manifest.h. */
#include "manifest.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

struct velo_unreg {
  int fd;      /* the database file, read-only: flock needs no write access */
  int per_txn; /* VELO_STORE_LOCK_PER_TXN */
  pthread_mutex_t mu;
  int active; /* read transactions open (per_txn) */
};

static int flock_retry(int fd, int op) {
  int r;
  while ((r = flock(fd, op)) < 0 && errno == EINTR) {
  }
  return r;
}

/* Registered when this user may write the lock file (or create it, when it is missing): LMDB's own rule
 * (mdb_env_setup_locks skips the lock file of a read-only env that cannot open it for writing). */
static int can_register(const char *path) {
  char lock[4200];
  snprintf(lock, sizeof lock, "%s-lock", path);
  if (access(lock, W_OK) == 0) return 1;
  if (errno != ENOENT) return 0;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  return access(dir, W_OK) == 0;
}

int velo_store_open(struct velo_store *st, const char *home, struct velo_err *err) { return velo_store_open_flags(st, home, 0, err); }

int velo_store_open_flags(struct velo_store *st, const char *home, int flags, struct velo_err *err) {
  memset(st, 0, sizeof *st);
  char path[4096];
  if (snprintf(path, sizeof path, "%s/db/velo.lmdb", home) >= (int)sizeof path) return velo_fail(err, ENAMETOOLONG, "store path too long");
  unsigned env_flags = MDB_NOSUBDIR | MDB_RDONLY | MDB_NOTLS;
  if (!can_register(path)) {
    struct velo_unreg *u = calloc(1, sizeof *u);
    if (!u) return velo_fail(err, ENOMEM, "velo_store_open");
    u->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (u->fd < 0 || flock_retry(u->fd, LOCK_SH) < 0) {
      int e = errno;
      if (u->fd >= 0) close(u->fd);
      free(u);
      return velo_fail(err, e, "cannot open manifest database %s", path);
    }
    u->per_txn = !!(flags & VELO_STORE_LOCK_PER_TXN);
    pthread_mutex_init(&u->mu, NULL);
    st->unreg = u;
    env_flags |= MDB_NOLOCK;
  }
  int rc = mdb_env_create(&st->env);
  if (rc) {
    velo_store_close(st);
    return velo_fail(err, 0, "mdb_env_create: %s", mdb_strerror(rc));
  }
  mdb_env_set_maxdbs(st->env, 16);
  /* Read-only, no subdir (lmdb-js layout), no thread-local reader slots (the shim runs in arbitrary threads). */
  rc = mdb_env_open(st->env, path, env_flags, 0644);
  if (rc) {
    velo_store_close(st);
    if (rc > 0) return velo_fail(err, rc, "cannot open manifest database %s", path);
    return velo_fail(err, 0, "cannot open manifest database %s: %s", path, mdb_strerror(rc));
  }
  MDB_txn *txn;
  rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
  if (rc == 0) {
    rc = mdb_dbi_open(txn, "entries", 0, &st->entries);
    /* commit, not abort: a dbi opened in an aborted txn is closed with it */
    if (rc == 0) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
  }
  if (rc) {
    velo_store_close(st);
    return velo_fail(err, 0, "cannot open the entries table in %s: %s", path, mdb_strerror(rc));
  }
  st->home = strdup(home);
  if (asprintf(&st->cas_dir, "%s/cas/blake3", home) < 0 || !st->home) {
    velo_store_close(st);
    return velo_fail(err, ENOMEM, "velo_store_open");
  }
  if (st->unreg && st->unreg->per_txn) flock_retry(st->unreg->fd, LOCK_UN);
  return 0;
}

void velo_store_close(struct velo_store *st) {
  if (st->env) mdb_env_close(st->env);
  if (st->unreg) {
    close(st->unreg->fd); /* drops the flock */
    pthread_mutex_destroy(&st->unreg->mu);
    free(st->unreg);
  }
  free(st->home);
  free(st->cas_dir);
  memset(st, 0, sizeof *st);
}

int velo_txn_begin(const struct velo_store *st, MDB_txn **txn, struct velo_err *err) {
  struct velo_unreg *u = st->unreg;
  if (u && u->per_txn) {
    pthread_mutex_lock(&u->mu);
    int r = u->active == 0 ? flock_retry(u->fd, LOCK_SH) : 0;
    if (r == 0) u->active++;
    int e = errno;
    pthread_mutex_unlock(&u->mu);
    if (r < 0) return velo_fail(err, e, "cannot lock the manifest database for reading");
  }
  int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
  if (rc) {
    *txn = NULL;
    velo_txn_end(st, NULL);
    return velo_fail(err, rc > 0 ? rc : 0, "mdb_txn_begin: %s", mdb_strerror(rc));
  }
  return 0;
}

void velo_txn_end(const struct velo_store *st, MDB_txn *txn) {
  if (txn) mdb_txn_abort(txn);
  struct velo_unreg *u = st->unreg;
  if (u && u->per_txn) {
    pthread_mutex_lock(&u->mu);
    if (u->active > 0 && --u->active == 0) flock_retry(u->fd, LOCK_UN);
    pthread_mutex_unlock(&u->mu);
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int velo_parse_layer_id(uint8_t out[32], const char *hex, struct velo_err *err) {
  if (!hex || strlen(hex) != 64) return velo_fail(err, 0, "layer id must be 64 hex characters: %s", hex ? hex : "(null)");
  for (int i = 0; i < 32; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return velo_fail(err, 0, "layer id is not hex: %s", hex);
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

int velo_image_get(const struct velo_store *st, const char *name, char **json, struct velo_err *err) {
  return velo_record_get(st, "images", name, json, err);
}

int velo_record_get(const struct velo_store *st, const char *db, const char *key, char **json, struct velo_err *err) {
  *json = NULL;
  size_t n = strlen(key);
  /* ordered-binary writes a string key as its UTF-8 bytes unless it starts with a byte below 0x20 (names never do) */
  if (n == 0 || (unsigned char)key[0] < 0x20) return 0;
  MDB_txn *txn;
  if (velo_txn_begin(st, &txn, err) < 0) return -1;
  MDB_dbi dbi;
  int rc = mdb_dbi_open(txn, db, 0, &dbi);
  if (rc == MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return 0;
  }
  MDB_val k = {n, (void *)key}, v;
  if (rc == 0) rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return 0;
  }
  if (rc) {
    mdb_txn_abort(txn);
    return velo_fail(err, 0, "cannot read %s from %s: %s", key, db, mdb_strerror(rc));
  }
  *json = malloc(v.mv_size + 1);
  if (*json) {
    memcpy(*json, v.mv_data, v.mv_size);
    (*json)[v.mv_size] = 0;
  }
  mdb_txn_abort(txn);
  return *json ? 1 : velo_fail(err, ENOMEM, "cannot read %s from %s", key, db);
}

int velo_entry_decode(const MDB_val *v, struct velo_entry *e, struct velo_err *err) {
  const uint8_t *p = v->mv_data;
  if (v->mv_size < VELO_ENTRY_SIZE) return velo_fail(err, 0, "manifest entry too short (%zu bytes)", v->mv_size);
  uint32_t version = rd32(p + 84);
  if (version != VELO_ENTRY_VERSION && version != VELO_ENTRY_VERSION_XATTRS)
    return velo_fail(err, 0, "manifest entry version %u not supported", version);
  memcpy(e->hash, p, 32);
  e->size = rd64(p + 32);
  e->mtime_sec = (int64_t)rd64(p + 40);
  e->rdev = rd64(p + 48);
  e->mtime_nsec = rd32(p + 56);
  e->mode = rd32(p + 60);
  e->uid = rd32(p + 64);
  e->gid = rd32(p + 68);
  e->ino = rd32(p + 72);
  e->nlink = rd32(p + 76);
  e->flags = rd32(p + 80);
  e->xattrs = NULL;
  e->xattrs_len = 0;
  if (version == VELO_ENTRY_VERSION) {
    e->target_len = v->mv_size - VELO_ENTRY_SIZE;
    e->target = e->target_len ? (const char *)p + VELO_ENTRY_SIZE : NULL;
    return 0;
  }
  if (v->mv_size < VELO_ENTRY_V2_FIXED) return velo_fail(err, 0, "manifest entry too short (%zu bytes)", v->mv_size);
  uint32_t tl = rd32(p + 88), xl = rd32(p + 92);
  if ((size_t)VELO_ENTRY_V2_FIXED + tl + xl != v->mv_size || xl < 4) return velo_fail(err, 0, "manifest entry lengths do not add up");
  e->target_len = tl;
  e->target = tl ? (const char *)p + VELO_ENTRY_V2_FIXED : NULL;
  e->xattrs = p + VELO_ENTRY_V2_FIXED + tl;
  e->xattrs_len = xl;
  memcpy(e->xattr_digest, p + 96, 16);
  return 0;
}

int velo_object_path(const struct velo_store *st, const struct velo_entry *e, char *buf, size_t len) {
  static const char hx[] = "0123456789abcdef";
  char hex[65];
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = hx[e->hash[i] >> 4];
    hex[2 * i + 1] = hx[e->hash[i] & 15];
  }
  hex[64] = 0;
  char xs[36] = "";
  if (e->xattrs) { /* the variant that carries the entry's xattrs */
    xs[0] = '_';
    xs[1] = 'x';
    for (int i = 0; i < 16; i++) {
      xs[2 + 2 * i] = hx[e->xattr_digest[i] >> 4];
      xs[3 + 2 * i] = hx[e->xattr_digest[i] & 15];
    }
    xs[34] = 0;
  }
  int n = snprintf(buf, len, "%s/%.2s/%s_%llu_%o_%u_%u%s", st->cas_dir, hex, hex, (unsigned long long)e->size,
                   e->mode & 07777, e->uid, e->gid, xs);
  return (n < 0 || (size_t)n >= len) ? -1 : n;
}

static void make_key(uint8_t *key, const uint8_t layer[32], uint32_t parent, const char *name, size_t len) {
  memcpy(key, layer, 32);
  key[32] = parent >> 24;
  key[33] = parent >> 16;
  key[34] = parent >> 8;
  key[35] = parent;
  if (len) memcpy(key + VELO_KEY_PREFIX, name, len);
}

int velo_layer_child(MDB_txn *txn, const struct velo_store *st, const uint8_t layer[32], uint32_t parent_ino,
                     const char *name, size_t name_len, struct velo_entry *out, struct velo_err *err) {
  uint8_t key[VELO_KEY_PREFIX + 256];
  if (name_len > 255) return 0; /* no such name can exist */
  make_key(key, layer, parent_ino, name, name_len);
  MDB_val k = {VELO_KEY_PREFIX + name_len, key}, v;
  int rc = mdb_get(txn, st->entries, &k, &v);
  if (rc == MDB_NOTFOUND) return 0;
  if (rc) return velo_fail(err, rc > 0 ? rc : 0, "manifest lookup: %s", mdb_strerror(rc));
  if (velo_entry_decode(&v, out, err) < 0) return -1;
  return 1;
}

int velo_view_init(struct velo_view *v, struct velo_store *st, const char *const *ids, int n, struct velo_err *err) {
  if (n < 1 || n > VELO_MAX_LAYERS) return velo_fail(err, 0, "an image needs 1 to %d layers, got %d", VELO_MAX_LAYERS, n);
  v->store = st;
  v->n_layers = n;
  for (int i = 0; i < n; i++)
    if (velo_parse_layer_id(v->layers[i], ids[i], err) < 0) return -1;
  return 0;
}

static int is_dir(const struct velo_entry *e) { return (e->mode & S_IFMT) == S_IFDIR && !(e->flags & VELO_FLAG_WHITEOUT); }

int velo_view_root(MDB_txn *txn, const struct velo_view *v, struct velo_dir *dir, struct velo_entry *entry, struct velo_err *err) {
  dir->n = 0;
  int found = 0;
  for (int i = 0; i < v->n_layers; i++) {
    struct velo_entry e;
    int r = velo_layer_child(txn, v->store, v->layers[i], 0, "", 0, &e, err);
    if (r < 0) return -1;
    if (r == 0) return velo_fail(err, 0, "layer %d of the image has no root entry (missing layer?)", i);
    if (!found && entry) *entry = e;
    found = 1;
    dir->at[dir->n].layer = (uint16_t)i;
    dir->at[dir->n].ino = e.ino;
    dir->n++;
    if (e.flags & VELO_FLAG_OPAQUE) break;
  }
  return 1;
}

int velo_view_lookup(MDB_txn *txn, const struct velo_view *v, const struct velo_dir *dir, const char *name, size_t name_len,
                     struct velo_entry *out, struct velo_dir *subdir, int *layer_out, struct velo_err *err) {
  int found = 0;
  if (subdir) subdir->n = 0;
  for (int i = 0; i < dir->n; i++) {
    struct velo_entry e;
    int r = velo_layer_child(txn, v->store, v->layers[dir->at[i].layer], dir->at[i].ino, name, name_len, &e, err);
    if (r < 0) return -1;
    if (r == 0) continue;
    if (!found) {
      if (e.flags & VELO_FLAG_WHITEOUT) return 0;
      *out = e;
      if (layer_out) *layer_out = dir->at[i].layer;
      found = 1;
      if (!is_dir(&e) || !subdir) return 1;
    } else if (!is_dir(&e)) {
      break; /* a whiteout or non-directory in a lower layer hides everything below it */
    }
    subdir->at[subdir->n].layer = dir->at[i].layer;
    subdir->at[subdir->n].ino = e.ino;
    subdir->n++;
    if (e.flags & VELO_FLAG_OPAQUE) break;
  }
  return found;
}

int velo_view_resolve(MDB_txn *txn, const struct velo_view *v, const char *path, struct velo_entry *out,
                      struct velo_dir *dir_out, int *layer_out, struct velo_err *err) {
  struct velo_dir cur_dir_storage, next_dir_storage;
  struct velo_dir *cur = dir_out ? dir_out : &cur_dir_storage;
  struct velo_entry e;
  if (velo_view_root(txn, v, cur, &e, err) < 0) return -1;
  if (layer_out) *layer_out = 0;
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 1 && p[0] == '.') {
      p += len;
      continue;
    }
    if (!is_dir(&e)) return 0;
    int r = velo_view_lookup(txn, v, cur, p, len, &e, &next_dir_storage, layer_out, err);
    if (r <= 0) return r;
    *cur = next_dir_storage;
    p += len;
  }
  *out = e;
  return 1;
}

struct head {
  MDB_cursor *cur;
  uint8_t prefix[VELO_KEY_PREFIX];
  MDB_val k, v;
  int live;
  int layer;
};

static int head_next(struct head *h, MDB_cursor_op op) {
  int rc = mdb_cursor_get(h->cur, &h->k, &h->v, op);
  h->live = rc == 0 && h->k.mv_size >= VELO_KEY_PREFIX && memcmp(h->k.mv_data, h->prefix, VELO_KEY_PREFIX) == 0;
  if (h->live && h->k.mv_size == VELO_KEY_PREFIX) return head_next(h, MDB_NEXT); /* the root's own key */
  return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc;
}

static int name_cmp(const MDB_val *a, const MDB_val *b) {
  size_t la = a->mv_size - VELO_KEY_PREFIX, lb = b->mv_size - VELO_KEY_PREFIX;
  int c = memcmp((const uint8_t *)a->mv_data + VELO_KEY_PREFIX, (const uint8_t *)b->mv_data + VELO_KEY_PREFIX, la < lb ? la : lb);
  return c ? c : (la < lb ? -1 : la > lb);
}

int velo_view_readdir(MDB_txn *txn, const struct velo_view *v, const struct velo_dir *dir, velo_readdir_cb cb, void *ctx,
                      struct velo_err *err) {
  struct head *heads = calloc(dir->n ? dir->n : 1, sizeof *heads);
  if (!heads) return velo_fail(err, ENOMEM, "readdir");
  int ret = 0, n = 0;
  for (int i = 0; i < dir->n; i++) {
    struct head *h = &heads[n];
    int rc = mdb_cursor_open(txn, v->store->entries, &h->cur);
    if (rc) {
      ret = velo_fail(err, 0, "mdb_cursor_open: %s", mdb_strerror(rc));
      goto out;
    }
    n++;
    make_key(h->prefix, v->layers[dir->at[i].layer], dir->at[i].ino, NULL, 0);
    h->layer = dir->at[i].layer;
    h->k.mv_data = h->prefix;
    h->k.mv_size = VELO_KEY_PREFIX;
    rc = head_next(h, MDB_SET_RANGE);
    if (rc) {
      ret = velo_fail(err, 0, "manifest readdir: %s", mdb_strerror(rc));
      goto out;
    }
  }
  for (;;) {
    int min = -1;
    for (int i = 0; i < n; i++)
      if (heads[i].live && (min < 0 || name_cmp(&heads[i].k, &heads[min].k) < 0)) min = i;
    if (min < 0) break;
    /* heads are top first, so the first head holding the smallest name is the uppermost layer's entry */
    MDB_val name = heads[min].k;
    struct velo_entry e;
    if (velo_entry_decode(&heads[min].v, &e, err) < 0) {
      ret = -1;
      goto out;
    }
    if (!(e.flags & VELO_FLAG_WHITEOUT)) {
      int r = cb(ctx, (const char *)name.mv_data + VELO_KEY_PREFIX, name.mv_size - VELO_KEY_PREFIX, &e, heads[min].layer);
      if (r) {
        ret = r;
        goto out;
      }
    }
    /* advance every head that holds this name (copy the name first: cursors move) */
    uint8_t nb[VELO_KEY_PREFIX + 256];
    size_t nl = name.mv_size;
    memcpy(nb, name.mv_data, nl);
    MDB_val nv = {nl, nb};
    for (int i = 0; i < n; i++)
      if (heads[i].live && name_cmp(&heads[i].k, &nv) == 0) {
        int rc = head_next(&heads[i], MDB_NEXT);
        if (rc) {
          ret = velo_fail(err, 0, "manifest readdir: %s", mdb_strerror(rc));
          goto out;
        }
      }
  }
out:
  for (int i = 0; i < n; i++) mdb_cursor_close(heads[i].cur);
  free(heads);
  return ret;
}
