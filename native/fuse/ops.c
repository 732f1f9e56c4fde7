/* The FUSE low-level operations of velo-fuse: a read-only view of one image. Lookups walk the merged view
 * (native/common/manifest.c: uppermost layer wins, whiteouts and opaque directories applied); reads come
 * from the CAS objects through the descriptor cache. The data never changes under a mount (layers and
 * objects are immutable), so every reply carries long timeouts and the kernel keeps pages and dentries. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include "../common/velo_xattrs.h"
#include "velo_fuse.h"

static struct velo_fs *FS(fuse_req_t req) { return fuse_req_userdata(req); }

static struct vnode *NODE(struct velo_fs *fs, fuse_ino_t ino) {
  return ino == FUSE_ROOT_ID ? fs->nodes.root : (struct vnode *)(uintptr_t)ino;
}

static fuse_ino_t NODEID(struct velo_fs *fs, struct vnode *n) {
  return n == fs->nodes.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

/* the daemon serves one store: the one begin() last opened a transaction on */
static const struct velo_store *txn_store;
static void txn_abortp(MDB_txn **t) {
  if (*t) velo_txn_end(txn_store, *t);
}
#define cleanup_txn __attribute__((cleanup(txn_abortp)))

static int begin(struct velo_fs *fs, MDB_txn **txn) {
  struct velo_err err = {0};
  txn_store = &fs->store;
  if (velo_txn_begin(&fs->store, txn, &err) < 0) {
    fuse_log(FUSE_LOG_ERR, "velo-fuse: %s\n", err.msg);
    *txn = NULL;
    return -EIO;
  }
  return 0;
}


static void fill_attr(const struct vnode *n, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = n->ino;
  st->st_mode = n->e.mode;
  st->st_uid = n->e.uid;
  st->st_gid = n->e.gid;
  st->st_rdev = (dev_t)n->e.rdev;
  st->st_blksize = 4096;
  switch (n->e.mode & S_IFMT) {
  case S_IFREG:
    st->st_size = (off_t)n->e.size;
    st->st_nlink = n->e.nlink ? n->e.nlink : 1;
    break;
  case S_IFLNK:
    st->st_size = (off_t)n->e.target_len;
    st->st_nlink = 1;
    break;
  case S_IFDIR:
    st->st_size = 4096;
    st->st_nlink = 1; /* "unknown": subdirectory counts are not stored, and 1 makes find skip its leaf optimisation */
    break;
  default:
    st->st_nlink = n->e.nlink ? n->e.nlink : 1;
  }
  st->st_blocks = (st->st_size + 511) / 512;
  st->st_mtim.tv_sec = st->st_atim.tv_sec = st->st_ctim.tv_sec = (time_t)n->e.mtime_sec;
  st->st_mtim.tv_nsec = st->st_atim.tv_nsec = st->st_ctim.tv_nsec = n->e.mtime_nsec;
}

/* Look NAME up in directory PARENT: on success the returned node holds one more kernel reference and
 * EP describes it. 0 = found, -ENOENT = absent, other < 0 = error. */
static int do_lookup(struct velo_fs *fs, MDB_txn *txn, struct vnode *parent, const char *name, size_t len,
                     struct fuse_entry_param *ep) {
  if (!parent->dir) return -ENOTDIR;
  struct velo_err err = {0};
  struct velo_entry e;
  struct velo_dir sub;
  int layer = 0;
  int r = velo_view_lookup(txn, &fs->view, parent->dir, name, len, &e, &sub, &layer, &err);
  if (r < 0) {
    fuse_log(FUSE_LOG_ERR, "velo-fuse: lookup %.*s: %s\n", (int)len, name, err.msg);
    return -EIO;
  }
  if (r == 0) return -ENOENT;
  uint64_t ino = (uint64_t)layer << 32 | e.ino;
  struct vnode *n = nodes_get(&fs->nodes, ino);
  if (!n) {
    int dir = S_ISDIR(e.mode) && !(e.flags & VELO_FLAG_WHITEOUT);
    struct vnode *fresh = vnode_new(&e, layer, dir ? &sub : NULL, parent->ino);
    if (!fresh) return -ENOMEM;
    n = nodes_insert(&fs->nodes, fresh);
  }
  memset(ep, 0, sizeof *ep);
  ep->ino = NODEID(fs, n);
  ep->generation = 1;
  ep->attr_timeout = ep->entry_timeout = fs->timeout;
  fill_attr(n, &ep->attr);
  return 0;
}

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  (void)userdata;
  unsigned want = FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_PARALLEL_DIROPS |
                  FUSE_CAP_READDIRPLUS | FUSE_CAP_ASYNC_READ;
  conn->want |= want & conn->capable;
  /* The data never changes: no need to drop the page cache when attributes are refreshed. */
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  struct velo_fs *fs = FS(req);
  cleanup_txn MDB_txn *txn = NULL;
  int r = begin(fs, &txn);
  struct fuse_entry_param ep;
  if (r == 0) r = do_lookup(fs, txn, NODE(fs, parent), name, strlen(name), &ep);
  if (r == -ENOENT) {
    /* a negative entry, cached by the kernel as long as a positive one: nothing will ever appear */
    memset(&ep, 0, sizeof ep);
    ep.entry_timeout = fs->timeout;
    fuse_reply_entry(req, &ep);
    return;
  }
  if (r < 0) fuse_reply_err(req, -r);
  else fuse_reply_entry(req, &ep);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  struct velo_fs *fs = FS(req);
  nodes_forget(&fs->nodes, NODE(fs, ino), nlookup);
  fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  struct velo_fs *fs = FS(req);
  for (size_t i = 0; i < count; i++) nodes_forget(&fs->nodes, NODE(fs, forgets[i].ino), forgets[i].nlookup);
  fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  struct velo_fs *fs = FS(req);
  struct stat st;
  fill_attr(NODE(fs, ino), &st);
  fuse_reply_attr(req, &st, fs->timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  struct vnode *n = NODE(FS(req), ino);
  if (!S_ISLNK(n->e.mode) || !n->target) fuse_reply_err(req, EINVAL);
  else fuse_reply_readlink(req, n->target);
}

/* ---- directories: the merged listing is taken once at opendir and served by offset ---------------- */

struct dent {
  size_t name_off;
  uint64_t ino;
  uint32_t mode;
};

struct dirlist {
  struct dent *ents;
  size_t n, cap;
  char *names;
  size_t names_len, names_cap;
};

static void dirlist_free(struct dirlist *d) {
  if (!d) return;
  free(d->ents);
  free(d->names);
  free(d);
}

static int dirlist_add(struct dirlist *d, const char *name, size_t len, uint64_t ino, uint32_t mode) {
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 64;
    struct dent *e = realloc(d->ents, cap * sizeof *e);
    if (!e) return -ENOMEM;
    d->ents = e;
    d->cap = cap;
  }
  if (d->names_len + len + 1 > d->names_cap) {
    size_t cap = d->names_cap ? d->names_cap * 2 : 4096;
    while (cap < d->names_len + len + 1) cap *= 2;
    char *s = realloc(d->names, cap);
    if (!s) return -ENOMEM;
    d->names = s;
    d->names_cap = cap;
  }
  memcpy(d->names + d->names_len, name, len);
  d->names[d->names_len + len] = 0;
  d->ents[d->n++] = (struct dent){.name_off = d->names_len, .ino = ino, .mode = mode};
  d->names_len += len + 1;
  return 0;
}

static int collect(void *ctx, const char *name, size_t len, const struct velo_entry *e, int layer) {
  /* The writer never stores such names; a damaged manifest must not make us list them (fail closed). */
  if (len == 0 || len > 255 || memchr(name, '/', len) || memchr(name, 0, len) || (len == 1 && name[0] == '.') ||
      (len == 2 && name[0] == '.' && name[1] == '.')) {
    fuse_log(FUSE_LOG_ERR, "velo-fuse: manifest entry with an invalid name (%zu bytes) skipped; run velo fsck\n", len);
    return 0;
  }
  return dirlist_add(ctx, name, len, (uint64_t)layer << 32 | e->ino, e->mode) < 0 ? -ENOMEM : 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct velo_fs *fs = FS(req);
  struct vnode *n = NODE(fs, ino);
  if (!n->dir) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, EROFS);
    return;
  }
  struct dirlist *d = calloc(1, sizeof *d);
  cleanup_txn MDB_txn *txn = NULL;
  int r = d ? begin(fs, &txn) : -ENOMEM;
  if (r == 0) r = dirlist_add(d, ".", 1, n->ino, S_IFDIR);
  if (r == 0) r = dirlist_add(d, "..", 2, n->parent_ino ? n->parent_ino : n->ino, S_IFDIR);
  if (r == 0) {
    struct velo_err err = {0};
    int rr = velo_view_readdir(txn, &fs->view, n->dir, collect, d, &err);
    if (rr == -ENOMEM) r = -ENOMEM;
    else if (rr != 0) {
      fuse_log(FUSE_LOG_ERR, "velo-fuse: readdir: %s\n", err.msg);
      r = -EIO;
    }
  }
  if (r < 0) {
    dirlist_free(d);
    fuse_reply_err(req, -r);
    return;
  }
  fi->fh = (uint64_t)(uintptr_t)d;
  fi->keep_cache = 1;
  fi->cache_readdir = 1;
  if (fuse_reply_open(req, fi) == -ENOENT) dirlist_free(d); /* the opener was interrupted */
}

static int is_dot(const char *s) { return s[0] == '.' && (s[1] == 0 || (s[1] == '.' && s[2] == 0)); }

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi, int plus) {
  struct velo_fs *fs = FS(req);
  struct dirlist *d = (struct dirlist *)(uintptr_t)fi->fh;
  struct vnode *dirnode = NODE(fs, ino);
  cleanup_free char *buf = malloc(size);
  if (!buf) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  cleanup_txn MDB_txn *txn = NULL;
  if (plus) {
    int r = begin(fs, &txn);
    if (r < 0) {
      fuse_reply_err(req, -r);
      return;
    }
  }
  size_t pos = 0;
  for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
    const struct dent *de = &d->ents[i];
    const char *name = d->names + de->name_off;
    size_t used;
    if (!plus) {
      struct stat st = {.st_ino = de->ino, .st_mode = de->mode};
      used = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t)(i + 1));
    } else if (is_dot(name)) {
      struct fuse_entry_param ep = {0};
      ep.attr.st_ino = de->ino;
      ep.attr.st_mode = S_IFDIR;
      used = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &ep, (off_t)(i + 1));
    } else {
      struct fuse_entry_param ep;
      int r = do_lookup(fs, txn, dirnode, name, strlen(name), &ep);
      if (r == -ENOENT) continue;
      if (r < 0) {
        if (pos == 0) {
          fuse_reply_err(req, -r);
          return;
        }
        break;
      }
      used = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &ep, (off_t)(i + 1));
      if (used > size - pos) {
        /* did not fit: the kernel never sees this entry, so drop the reference the lookup took */
        nodes_forget(&fs->nodes, NODE(fs, ep.ino), 1);
        break;
      }
    }
    if (used > size - pos) break;
    pos += used;
  }
  fuse_reply_buf(req, buf, pos);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  dirlist_free((struct dirlist *)(uintptr_t)fi->fh);
  fuse_reply_err(req, 0);
}

/* ---- files -------------------------------------------------------------------------------------------- */

/* Passthrough: the kernel allows one backing file per inode at a time (a second, different one is refused
 * with EBUSY, seen by the opener as EIO), so a node's object is registered once, at its first open, and the
 * backing id is shared by every open of the node until the last one is released. Returns the backing id,
 * -ENOSYS when this open is to be served by the daemon instead, or another -errno for the opener. */
static int passthrough_acquire(struct velo_fs *fs, struct vnode *n, const char *path) {
  pthread_mutex_lock(&fs->pt_lock);
  if (n->pt_opens > 0) {
    /* keep using it even if passthrough was switched off since: the kernel wants one mode per inode */
    n->pt_opens++;
    int id = n->pt_id;
    pthread_mutex_unlock(&fs->pt_lock);
    return id;
  }
  if (!fs->passthrough) {
    pthread_mutex_unlock(&fs->pt_lock);
    return -ENOSYS;
  }
  struct fdc_ent *ent;
  int r = fdcache_get(&fs->fds, path, n->e.size, &ent);
  if (r < 0) {
    pthread_mutex_unlock(&fs->pt_lock);
    if (r == -EIO) fuse_log(FUSE_LOG_ERR, "velo-fuse: object %s is missing or has the wrong size\n", path);
    return r;
  }
  int id = passthrough_register(fs->dev_fd, fdc_fd(ent));
  fdcache_put(&fs->fds, ent);
  if (id >= 0) {
    n->pt_id = id;
    n->pt_opens = 1;
  } else {
    /* refused (old kernel, stacked store filesystem, no privilege): serve reads ourselves from now on */
    fuse_log(FUSE_LOG_INFO, "velo-fuse: passthrough unavailable (%s); the daemon serves reads\n", strerror(-id));
    fs->passthrough = 0;
    id = -ENOSYS;
  }
  pthread_mutex_unlock(&fs->pt_lock);
  return id;
}

static void passthrough_release(struct velo_fs *fs, struct vnode *n) {
  pthread_mutex_lock(&fs->pt_lock);
  if (n->pt_opens > 0 && --n->pt_opens == 0) passthrough_unregister(fs->dev_fd, n->pt_id);
  pthread_mutex_unlock(&fs->pt_lock);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct velo_fs *fs = FS(req);
  struct vnode *n = NODE(fs, ino);
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_APPEND | O_CREAT))) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if (S_ISDIR(n->e.mode)) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  if (!S_ISREG(n->e.mode)) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  fi->fh = 0;
  if (n->e.size > 0) {
    char path[4096];
    if (velo_object_path(&fs->store, &n->e, path, sizeof path) < 0) {
      fuse_reply_err(req, ENAMETOOLONG);
      return;
    }
    if (fs->trace_fd >= 0 && !__atomic_exchange_n(&n->traced, 1, __ATOMIC_RELAXED)) {
      const char *base = strrchr(path, '/');
      char line[512];
      int k = snprintf(line, sizeof line, "%s\n", base ? base + 1 : path);
      if (k > 0 && (size_t)k < sizeof line && write(fs->trace_fd, line, (size_t)k) < 0) { /* best effort */
      }
    }
    /* a lazy image: an object not fetched yet is fetched now (bounded: EIO and a log line on failure) */
    if (fs->fetch_socket && access(path, F_OK) != 0 && errno == ENOENT && lazy_fetch(fs, path) < 0) {
      fuse_reply_err(req, EIO);
      return;
    }
    int id = passthrough_acquire(fs, n, path);
    if (id >= 0) {
      fi->fh = VELO_PT_TAG << 32 | (uint32_t)id;
      fi->noflush = 1; /* (keep_cache is refused with passthrough: the pages are the object's own) */
      if (fuse_reply_open(req, fi) == -ENOENT) passthrough_release(fs, n);
      return;
    }
    if (id != -ENOSYS) {
      fuse_reply_err(req, -id);
      return;
    }
    char *p = strdup(path);
    if (!p) {
      fuse_reply_err(req, ENOMEM);
      return;
    }
    fi->fh = (uint64_t)(uintptr_t)p;
  }
  fi->keep_cache = 1;
  fi->noflush = 1;
  if (fuse_reply_open(req, fi) == -ENOENT) free((char *)(uintptr_t)fi->fh);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  struct velo_fs *fs = FS(req);
  struct vnode *n = NODE(fs, ino);
  char pbuf[4096];
  const char *path = (const char *)(uintptr_t)fi->fh;
  if ((fi->fh >> 32) == VELO_PT_TAG) {
    /* a passthrough open whose read still came here (the kernel may fall back): serve it */
    path = velo_object_path(&fs->store, &n->e, pbuf, sizeof pbuf) < 0 ? NULL : pbuf;
  }
  if (!path || off < 0 || (uint64_t)off >= n->e.size) {
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  if ((uint64_t)off + size > n->e.size) size = (size_t)(n->e.size - (uint64_t)off);
  struct fdc_ent *ent;
  int r = fdcache_get(&fs->fds, path, n->e.size, &ent);
  if (r < 0) {
    if (r == -EIO) fuse_log(FUSE_LOG_ERR, "velo-fuse: object %s is missing or has the wrong size\n", path);
    fuse_reply_err(req, -r);
    return;
  }
  if (fs->no_splice) {
    /* pread into a buffer, then one write to /dev/fuse */
    char *buf = malloc(size);
    ssize_t n = buf ? pread(fdc_fd(ent), buf, size, off) : -1;
    int e = errno;
    fdcache_put(&fs->fds, ent);
    if (n < 0) fuse_reply_err(req, buf ? e : ENOMEM);
    else fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
    return;
  }
  struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
  bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
  bv.buf[0].fd = fdc_fd(ent);
  bv.buf[0].pos = off;
  fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
  fdcache_put(&fs->fds, ent);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if ((fi->fh >> 32) == VELO_PT_TAG) passthrough_release(FS(req), NODE(FS(req), ino));
  else free((char *)(uintptr_t)fi->fh);
  fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  (void)ino;
  (void)datasync;
  (void)fi;
  fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  struct velo_fs *fs = FS(req);
  struct statvfs sv;
  if (statvfs(fs->store.home, &sv) < 0) memset(&sv, 0, sizeof sv);
  /* the store's size, but nothing is free: this filesystem takes no writes */
  sv.f_bfree = sv.f_bavail = 0;
  sv.f_ffree = sv.f_favail = 0;
  sv.f_namemax = 255;
  sv.f_flag |= ST_RDONLY;
  fuse_reply_statfs(req, &sv);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  (void)ino;
  /* permission bits are checked by the kernel (default_permissions); only writes are ours to refuse */
  fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
}

/* Extended attributes come from the entry's canonical block (copied into the node by vnode_new). A block the
 * parser refuses (malformed, or carrying overlayfs' own attributes, which no writer of velo's produces) is
 * served as EIO: fail closed rather than expose part of it. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  struct vnode *n = NODE(FS(req), ino);
  struct velo_err err = {0};
  struct velo_xattr_it it;
  struct velo_xattr x;
  int r = n->e.xattrs ? velo_xattrs_begin(&it, n->e.xattrs, n->e.xattrs_len, &err) : 0;
  if (r < 0 || !n->e.xattrs) {
    fuse_reply_err(req, r < 0 ? EIO : ENODATA);
    return;
  }
  while ((r = velo_xattrs_next(&it, &x, &err)) > 0) {
    if (strcmp(x.name, name) != 0) continue;
    if (size == 0) fuse_reply_xattr(req, x.value_len);
    else if (size < x.value_len) fuse_reply_err(req, ERANGE);
    else fuse_reply_buf(req, x.value, x.value_len);
    return;
  }
  fuse_reply_err(req, r < 0 ? EIO : ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  struct vnode *n = NODE(FS(req), ino);
  struct velo_err err = {0};
  struct velo_xattr_it it;
  struct velo_xattr x;
  char list[65536];
  size_t len = 0;
  int r = n->e.xattrs ? velo_xattrs_begin(&it, n->e.xattrs, n->e.xattrs_len, &err) : 0;
  while (r == 0 && n->e.xattrs && (r = velo_xattrs_next(&it, &x, &err)) > 0) {
    size_t l = strlen(x.name) + 1;
    if (len + l > sizeof list) {
      r = -1;
      break;
    }
    memcpy(list + len, x.name, l);
    len += l;
    r = 0;
  }
  if (r < 0) fuse_reply_err(req, EIO);
  else if (size == 0) fuse_reply_xattr(req, len);
  else if (size < len) fuse_reply_err(req, ERANGE);
  else fuse_reply_buf(req, list, len);
}

/* ---- every mutating operation: EROFS ------------------------------------------------------------- */

static void erofs(fuse_req_t req) { fuse_reply_err(req, EROFS); }
static void op_setattr(fuse_req_t req, fuse_ino_t i, struct stat *a, int s, struct fuse_file_info *f) {
  (void)i, (void)a, (void)s, (void)f;
  erofs(req);
}
static void op_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d) {
  (void)p, (void)n, (void)m, (void)d;
  erofs(req);
}
static void op_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m) {
  (void)p, (void)n, (void)m;
  erofs(req);
}
static void op_unlink(fuse_req_t req, fuse_ino_t p, const char *n) {
  (void)p, (void)n;
  erofs(req);
}
static void op_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n) {
  (void)l, (void)p, (void)n;
  erofs(req);
}
static void op_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn, unsigned int f) {
  (void)p, (void)n, (void)np, (void)nn, (void)f;
  erofs(req);
}
static void op_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn) {
  (void)i, (void)np, (void)nn;
  erofs(req);
}
static void op_write(fuse_req_t req, fuse_ino_t i, const char *b, size_t s, off_t o, struct fuse_file_info *f) {
  (void)i, (void)b, (void)s, (void)o, (void)f;
  erofs(req);
}
static void op_write_buf(fuse_req_t req, fuse_ino_t i, struct fuse_bufvec *b, off_t o, struct fuse_file_info *f) {
  (void)i, (void)b, (void)o, (void)f;
  erofs(req);
}
static void op_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *f) {
  (void)p, (void)n, (void)m, (void)f;
  erofs(req);
}
static void op_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t s, int f) {
  (void)i, (void)n, (void)v, (void)s, (void)f;
  erofs(req);
}
static void op_removexattr(fuse_req_t req, fuse_ino_t i, const char *n) {
  (void)i, (void)n;
  erofs(req);
}
static void op_fallocate(fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l, struct fuse_file_info *f) {
  (void)i, (void)m, (void)o, (void)l, (void)f;
  erofs(req);
}
static void op_copy_file_range(fuse_req_t req, fuse_ino_t a, off_t b, struct fuse_file_info *c, fuse_ino_t d, off_t e,
                               struct fuse_file_info *f, size_t g, int h) {
  (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)h;
  erofs(req);
}

const struct fuse_lowlevel_ops velo_fuse_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .flush = op_flush,
    .fsync = op_fsync,
    .statfs = op_statfs,
    .access = op_access,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .write = op_write,
    .write_buf = op_write_buf,
    .create = op_create,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
    .fallocate = op_fallocate,
    .copy_file_range = op_copy_file_range,
};
