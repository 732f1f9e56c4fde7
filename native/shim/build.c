/* Building a projection's placeholder skeleton (see project.c and docs/shim.md), as a library: velo-project
 * runs it for the Node CLI, the native front-end calls it in-process for `velo run`. */
#include "build.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "manifest.h"
#include "velo_xattrs.h"
#include "ph.h"
#include "real.h"

struct link_slot {
  uint16_t layer;
  uint32_t ino;
  char *rel;
};

struct ctx {
  MDB_txn *txn;
  struct velo_view *v;
  int rootfd;
  int as_root;
  int resume; /* an interrupted build is being finished: names may exist already */
  char rel[PATH_MAX]; /* path of the current directory relative to ROOT ("" at the top) */
  size_t rel_len;
  struct link_slot *links;
  size_t links_cap, links_n;
  unsigned long files, dirs, symlinks, others, skipped, placeholders;
  struct velo_err err;
};

static uint64_t link_hash(uint16_t layer, uint32_t ino) { return ((uint64_t)layer << 32 | ino) * 0x9E3779B97F4A7C15ull; }

static struct link_slot *link_find(struct ctx *c, uint16_t layer, uint32_t ino, int insert) {
  if (insert && (c->links_n + 1) * 2 > c->links_cap) {
    size_t cap = c->links_cap ? c->links_cap * 2 : 1024;
    struct link_slot *n = calloc(cap, sizeof *n);
    if (!n) return NULL;
    for (size_t i = 0; i < c->links_cap; i++)
      if (c->links[i].rel) {
        size_t j = link_hash(c->links[i].layer, c->links[i].ino) & (cap - 1);
        while (n[j].rel) j = (j + 1) & (cap - 1);
        n[j] = c->links[i];
      }
    free(c->links);
    c->links = n;
    c->links_cap = cap;
  }
  if (!c->links_cap) return NULL;
  size_t j = link_hash(layer, ino) & (c->links_cap - 1);
  while (c->links[j].rel) {
    if (c->links[j].layer == layer && c->links[j].ino == ino) return &c->links[j];
    j = (j + 1) & (c->links_cap - 1);
  }
  if (!insert) return NULL;
  c->links[j].layer = layer;
  c->links[j].ino = ino;
  c->links_n++;
  return &c->links[j];
}

/* The entry's extended attributes on the projected inode (fd, or DFD/NM for a symlink). Unprivileged, the
 * trusted.* and security.* ones cannot be set: they are left out, as devices are (the projection is a
 * convenience, not an exact copy; sandboxes and checkouts are exact). */
static int set_xattrs(struct ctx *c, int fd, int dfd, const char *nm, const struct velo_entry *e, const char *what) {
  if (!e->xattrs) return 0;
  struct velo_xattr_it it;
  struct velo_xattr x;
  if (velo_xattrs_begin(&it, e->xattrs, e->xattrs_len, &c->err) < 0) return -1;
  char p[PATH_MAX];
  if (fd < 0 && (size_t)snprintf(p, sizeof p, "/proc/self/fd/%d/%s", dfd, nm) >= sizeof p) return velo_fail(&c->err, ENAMETOOLONG, "%s", what);
  int r;
  while ((r = velo_xattrs_next(&it, &x, &c->err)) > 0) {
    int rc = fd >= 0 ? fsetxattr(fd, x.name, x.value, x.value_len, 0) : lsetxattr(p, x.name, x.value, x.value_len, 0);
    if (rc < 0) {
      if (!c->as_root && (errno == EPERM || errno == ENOTSUP) && strncmp(x.name, "user.", 5) != 0) continue;
      return VELO_FAIL_ERRNO(&c->err, "set xattr %s on %s", x.name, what);
    }
  }
  return r;
}

static int set_meta_fd(struct ctx *c, int fd, const struct velo_entry *e, const char *what) {
  if (c->as_root && fchown(fd, e->uid, e->gid) < 0) return VELO_FAIL_ERRNO(&c->err, "chown %s", what);
  if (fchmod(fd, e->mode & 07777) < 0) return VELO_FAIL_ERRNO(&c->err, "chmod %s", what);
  if (set_xattrs(c, fd, -1, NULL, e, what) < 0) return -1; /* after chown: it clears security.capability */
  struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec}, {e->mtime_sec, e->mtime_nsec}};
  if (futimens(fd, ts) < 0) return VELO_FAIL_ERRNO(&c->err, "set times of %s", what);
  return 0;
}

static int walk(struct ctx *c, int dirfd, const struct velo_dir *dir);

struct walk_arg {
  struct ctx *c;
  int dirfd;
  const struct velo_dir *dir;
};

static int visit(void *arg, const char *name, size_t len, const struct velo_entry *e, int layer) {
  struct walk_arg *w = arg;
  struct ctx *c = w->c;
  char nm[256];
  if (len == 0 || len > 255) return velo_fail(&c->err, 0, "bad name length %zu in manifest", len);
  memcpy(nm, name, len);
  nm[len] = 0;
  size_t old = c->rel_len;
  if (old + len + 2 >= sizeof c->rel) return velo_fail(&c->err, ENAMETOOLONG, "path too long under %s", c->rel);
  if (old) c->rel[c->rel_len++] = '/';
  memcpy(c->rel + c->rel_len, nm, len + 1);
  c->rel_len += len;
  const char *what = c->rel;
  int dfd = w->dirfd, rc = 0;
  mode_t type = e->mode & S_IFMT;
  struct stat st;

  if (type == S_IFDIR) {
    if (mkdirat(dfd, nm, 0700) < 0) {
      if (errno != EEXIST) return VELO_FAIL_ERRNO(&c->err, "mkdir %s", what);
      if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(&c->err, "stat %s", what);
      if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dfd, nm, 0) < 0 || mkdirat(dfd, nm, 0700) < 0) return VELO_FAIL_ERRNO(&c->err, "replace %s", what);
      }
    }
    cleanup_fd int sub = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) return VELO_FAIL_ERRNO(&c->err, "open %s", what);
    struct velo_dir sd;
    struct velo_entry again;
    int r = velo_view_lookup(c->txn, c->v, w->dir, name, len, &again, &sd, NULL, &c->err);
    if (r <= 0) return r < 0 ? -1 : velo_fail(&c->err, 0, "manifest changed under %s", what);
    if (fchmod(sub, 0700) < 0) return VELO_FAIL_ERRNO(&c->err, "chmod %s", what); /* writable while we fill it (resume) */
    if (walk(c, sub, &sd) < 0) return -1;
    if (set_meta_fd(c, sub, e, what) < 0) return -1;
    c->dirs++;
  } else if (type == S_IFLNK) {
    if (c->resume && unlinkat(dfd, nm, 0) < 0 && errno != ENOENT) return VELO_FAIL_ERRNO(&c->err, "replace %s", what);
    char target[PATH_MAX];
    if (e->target_len >= sizeof target) return velo_fail(&c->err, ENAMETOOLONG, "symlink target of %s", what);
    memcpy(target, e->target, e->target_len);
    target[e->target_len] = 0;
    if (symlinkat(target, dfd, nm) < 0) return VELO_FAIL_ERRNO(&c->err, "symlink %s", what);
    if (c->as_root && fchownat(dfd, nm, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(&c->err, "chown %s", what);
    if (set_xattrs(c, -1, dfd, nm, e, what) < 0) return -1;
    struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec}, {e->mtime_sec, e->mtime_nsec}};
    if (utimensat(dfd, nm, ts, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(&c->err, "set times of %s", what);
    c->symlinks++;
  } else if (type == S_IFREG) {
    if (c->resume && unlinkat(dfd, nm, 0) < 0 && errno != ENOENT) return VELO_FAIL_ERRNO(&c->err, "replace %s", what);
    if (e->nlink > 1) {
      struct link_slot *s = link_find(c, (uint16_t)layer, e->ino, 0);
      if (s) {
        if (linkat(c->rootfd, s->rel, dfd, nm, 0) < 0) return VELO_FAIL_ERRNO(&c->err, "hard link %s", what);
        c->files++;
        goto done;
      }
    }
    cleanup_fd int fd = openat(dfd, nm, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return VELO_FAIL_ERRNO(&c->err, "create %s", what);
    if (e->size > 0 && e->xattrs) {
      /* A placeholder names its object by (hash, size, mode, owner) only, and its inode would have to carry the
       * file's xattrs anyway: files with xattrs (rare) are projected as real copies instead. */
      char obj[PATH_MAX];
      if (velo_object_path(c->v->store, e, obj, sizeof obj) < 0) return velo_fail(&c->err, ENAMETOOLONG, "object path of %s", what);
      cleanup_fd int in = open(obj, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (in < 0) return VELO_FAIL_ERRNO(&c->err, "store object of %s (%s)", what, obj);
      for (uint64_t done = 0; done < e->size;) {
        ssize_t n = copy_file_range(in, NULL, fd, NULL, e->size - done, 0);
        if (n < 0) return VELO_FAIL_ERRNO(&c->err, "copy %s", what);
        if (n == 0) return velo_fail(&c->err, 0, "store object %s is shorter than the manifest says", obj);
        done += (uint64_t)n;
      }
    } else if (e->size > 0) {
      char obj[PATH_MAX];
      unsigned char val[VELO_PH_VALUE_LEN];
      if (velo_object_path(c->v->store, e, obj, sizeof obj) < 0) return velo_fail(&c->err, ENAMETOOLONG, "object path of %s", what);
      if (lstat(obj, &st) < 0) return VELO_FAIL_ERRNO(&c->err, "store object of %s (%s)", what, obj);
      if ((uint64_t)st.st_size != e->size) return velo_fail(&c->err, 0, "store object %s has size %lld, manifest says %llu", obj, (long long)st.st_size, (unsigned long long)e->size);
      if (ftruncate(fd, (off_t)e->size) < 0) return VELO_FAIL_ERRNO(&c->err, "size %s", what);
      velo_ph_encode(val, e->hash, e->size, e->mode, e->uid, e->gid, (unsigned long long)st.st_blocks);
      if (fsetxattr(fd, VELO_XATTR_OBJ, val, sizeof val, 0) < 0)
        return VELO_FAIL_ERRNO(&c->err, "mark placeholder %s (the filesystem must support user xattrs)", what);
      if (!c->placeholders) {
        /* the mark must live inside the inode: the shim recognises placeholders by st_blocks == 0 */
        if (fstat(fd, &st) < 0) return VELO_FAIL_ERRNO(&c->err, "stat %s", what);
        if (st.st_blocks != 0)
          return velo_fail(&c->err, 0, "the filesystem under %s stores small xattrs outside the inode (a placeholder takes %lld blocks); "
                           "put the projection on ext4 with 256-byte inodes, xfs, btrfs or tmpfs, or use --phantom with a cache on one", what, (long long)st.st_blocks);
      }
      c->placeholders++;
    }
    if (set_meta_fd(c, fd, e, what) < 0) return -1;
    if (e->nlink > 1) {
      struct link_slot *s = link_find(c, (uint16_t)layer, e->ino, 1);
      if (!s || !(s->rel = strdup(c->rel))) return velo_fail(&c->err, ENOMEM, "hard link table");
    }
    c->files++;
  } else if (type == S_IFIFO || type == S_IFCHR || type == S_IFBLK) {
    if (c->resume && unlinkat(dfd, nm, 0) < 0 && errno != ENOENT) return VELO_FAIL_ERRNO(&c->err, "replace %s", what);
    if (type != S_IFIFO && !c->as_root) {
      c->skipped++; /* devices need root; an unprivileged projection leaves them out (reported) */
      goto done;
    }
    if (mknodat(dfd, nm, type | 0600, (dev_t)e->rdev) < 0) return VELO_FAIL_ERRNO(&c->err, "mknod %s", what);
    if (c->as_root && fchownat(dfd, nm, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(&c->err, "chown %s", what);
    if (fchmodat(dfd, nm, e->mode & 07777, 0) < 0) return VELO_FAIL_ERRNO(&c->err, "chmod %s", what);
    struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec}, {e->mtime_sec, e->mtime_nsec}};
    utimensat(dfd, nm, ts, AT_SYMLINK_NOFOLLOW);
    c->others++;
  } else {
    c->skipped++;
  }
done:
  c->rel_len = old;
  c->rel[old] = 0;
  return rc;
}

static int walk(struct ctx *c, int dirfd, const struct velo_dir *dir) {
  struct walk_arg w = {c, dirfd, dir};
  return velo_view_readdir(c->txn, c->v, dir, visit, &w, &c->err) ? -1 : 0;
}

static int dir_empty(int fd) {
  int d = dup(fd);
  DIR *dp = d >= 0 ? fdopendir(d) : NULL;
  if (!dp) return -1;
  struct dirent *de;
  int empty = 1;
  while ((de = readdir(dp)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
      empty = 0;
      break;
    }
  closedir(dp);
  return empty;
}

/* The stamp is short (an FNV-1a digest of the layer ids, NULs included) so it stays inside the root directory's
 * inode. The one definition: velo-project and the native front-end's freshness test both call it. */
void velo_project_stamp(const char *const *layers, int n, char out[VELO_STAMP_LEN]) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int i = 0; i < n; i++)
    for (const char *p = layers[i];; p++) {
      h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
      if (!*p) break;
    }
  snprintf(out, VELO_STAMP_LEN, "v1:%016llx", (unsigned long long)h);
}

int velo_project_build(const char *home, const char *root, const char *const *layers, int n, struct velo_build_result *res,
                       struct velo_err *err) {
  struct ctx c = {0};
  memset(res, 0, sizeof *res);
  c.as_root = geteuid() == 0;
  velo_real_init();
  char want[VELO_STAMP_LEN], building[VELO_STAMP_LEN], have[256];
  velo_project_stamp(layers, n, want);
  snprintf(building, sizeof building, "b1:%s", want + 3);

  if (mkdir(root, 0700) < 0 && errno != EEXIST) return velo_fail(err, errno, "cannot create %s", root);
  cleanup_fd int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rootfd < 0) {
    velo_fail(err, errno, "%s is not a directory", root);
    return VELO_BUILD_OTHER;
  }
  c.rootfd = rootfd;
  ssize_t hl = fgetxattr(rootfd, VELO_XATTR_STAMP, have, sizeof have - 1);
  have[hl > 0 ? hl : 0] = 0;
  if (hl > 0 && !strcmp(have, want)) {
    res->fresh = 1;
    return 0;
  }
  /* Two runs starting at once on the same place: one builds, the other waits and then finds it fresh.
   * The lock is on ROOT itself and goes away with the process (or the fd), however it ends. */
  if (flock(rootfd, LOCK_EX) < 0) return velo_fail(err, errno, "cannot lock %s", root);
  hl = fgetxattr(rootfd, VELO_XATTR_STAMP, have, sizeof have - 1);
  have[hl > 0 ? hl : 0] = 0;
  if (hl > 0 && !strcmp(have, want)) {
    res->fresh = 1;
    return 0;
  }
  c.resume = hl > 0 && !strcmp(have, building);
  if (hl > 0 && strcmp(have, building)) {
    velo_fail(err, 0, "%s holds a projection of another image (%.80s)", root, have);
    return VELO_BUILD_OTHER;
  }
  if (hl <= 0 && dir_empty(rootfd) != 1) {
    velo_fail(err, 0, "%s exists, is not empty and is not a velo projection", root);
    return VELO_BUILD_OTHER;
  }
  /* Building reads objects: hold the store's shared lock (as every writer does) so gc cannot sweep them
   * mid-build. The fresh path above takes no lock: it reads nothing from the store. */
  char lockpath[PATH_MAX];
  snprintf(lockpath, sizeof lockpath, "%s/lock", home);
  cleanup_fd int lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  /* a shared store this user may only read: flock works on a read-only fd too */
  if (lockfd < 0 && (errno == EACCES || errno == EROFS)) lockfd = open(lockpath, O_RDONLY | O_CLOEXEC);
  if (lockfd < 0 || flock(lockfd, LOCK_SH) < 0) return velo_fail(err, errno, "cannot take the store lock %s", lockpath);
  if (fchmod(rootfd, 0700) < 0 || fsetxattr(rootfd, VELO_XATTR_STAMP, building, strlen(building), 0) < 0) {
    int e = errno;
    return velo_fail(err, 0, "cannot mark %s: %s (the filesystem must support user xattrs)", root, strerror(e));
  }

  struct velo_store st;
  struct velo_view v;
  snprintf(velo_cas, sizeof velo_cas, "%s/cas/blake3", home);
  if (velo_store_open(&st, home, &c.err) < 0) {
    *err = c.err;
    return -1;
  }
  c.v = &v;
  int rc = -1;
  struct velo_dir rd;
  struct velo_entry re;
  if (velo_view_init(&v, &st, layers, n, &c.err) < 0) goto out;
  if (velo_txn_begin(&st, &c.txn, &c.err) < 0) goto out;
  if (velo_view_root(c.txn, &v, &rd, &re, &c.err) < 0) goto out;
  if (walk(&c, rootfd, &rd) < 0) goto out;
  if (fsetxattr(rootfd, VELO_XATTR_STAMP, want, strlen(want), 0) < 0) {
    VELO_FAIL_ERRNO(&c.err, "stamp %s", root);
    goto out;
  }
  if (set_meta_fd(&c, rootfd, &re, root) < 0) goto out;
  res->files = c.files;
  res->placeholders = c.placeholders;
  res->dirs = c.dirs;
  res->symlinks = c.symlinks;
  res->others = c.others;
  res->skipped = c.skipped;
  rc = 0;
out:
  if (rc) *err = c.err;
  if (c.txn) mdb_txn_abort(c.txn);
  velo_store_close(&st);
  for (size_t i = 0; i < c.links_cap; i++) free(c.links[i].rel);
  free(c.links);
  return rc;
}
