/* velo-project: the on-disk side of a projection.
 *
 *   velo-project build HOME ROOT LAYER_TOP [LAYER ...]
 *       Make ROOT the placeholder skeleton of the image (layers top first): real directories and symlinks,
 *       a placeholder per regular file (ph.h), hard links as hard links, fifos (and devices as root).
 *       The merged view is read from LMDB by native/common's reader, one cursor walk per directory.
 *       ROOT carries the xattr user.velo.image = "v1:<digest of the layer ids>" once complete, so a later
 *       build of the same image is a single getxattr ("fresh"). An interrupted build ("b1:...") is resumed.
 *       Exit 3 when ROOT holds something else (a non-empty directory that is not this image's projection).
 *   velo-project wake HOME ROOT
 *       Replace every placeholder under ROOT with a real copy of its object and drop the marks: the tree
 *       is then an ordinary directory, usable without velo.
 *   velo-project probe HOME < NUL-separated paths
 *       For each path that is a placeholder, print "path\\0object-path\\0" (velo ingest reads through them).
 *   velo-project stamp ROOT
 *       Print ROOT's stamp (empty line if none).
 * stdout: one JSON object; errors on stderr. */
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

struct velo_real R;
void velo_real_init(void) {
  R.openat = openat;
  R.fstatat = fstatat;
  R.close = close;
  R.rename = rename;
  R.readlink = readlink;
  R.getxattr = getxattr;
  R.lgetxattr = lgetxattr;
  R.fgetxattr = fgetxattr;
  R.fchown = fchown;
  R.fchmod = fchmod;
  R.futimens = futimens;
  R.unlinkat = unlinkat;
  R.ready = 1;
}

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

static int cmd_build(int argc, char **argv) {
  const char *home = argv[2], *root = argv[3];
  int n = argc - 4;
  struct ctx c = {0};
  c.as_root = geteuid() == 0;
  velo_real_init();
  /* The stamp is short (an FNV-1a digest of the layer ids) so it stays inside the root directory's inode. */
  uint64_t h = 0xcbf29ce484222325ull;
  for (int i = 0; i < n; i++)
    for (const char *p = argv[4 + i];; p++) {
      h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
      if (!*p) break;
    }
  char want[32], building[32], have[256];
  snprintf(want, sizeof want, "v1:%016llx", (unsigned long long)h);
  snprintf(building, sizeof building, "b1:%016llx", (unsigned long long)h);

  if (mkdir(root, 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, "velo-project: cannot create %s: %s\n", root, strerror(errno));
    return 1;
  }
  cleanup_fd int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rootfd < 0) {
    fprintf(stderr, "velo-project: %s is not a directory: %s\n", root, strerror(errno));
    return 3;
  }
  c.rootfd = rootfd;
  ssize_t hl = fgetxattr(rootfd, VELO_XATTR_STAMP, have, sizeof have - 1);
  have[hl > 0 ? hl : 0] = 0;
  if (hl > 0 && !strcmp(have, want)) {
    printf("{\"state\":\"fresh\"}\n");
    return 0;
  }
  /* Two runs starting at once on the same place: one builds, the other waits and then finds it fresh.
   * The lock is on ROOT itself and goes away with the process, however it dies. */
  if (flock(rootfd, LOCK_EX) < 0) {
    fprintf(stderr, "velo-project: cannot lock %s: %s\n", root, strerror(errno));
    return 1;
  }
  hl = fgetxattr(rootfd, VELO_XATTR_STAMP, have, sizeof have - 1);
  have[hl > 0 ? hl : 0] = 0;
  if (hl > 0 && !strcmp(have, want)) {
    printf("{\"state\":\"fresh\"}\n");
    return 0;
  }
  c.resume = hl > 0 && !strcmp(have, building);
  if (hl > 0 && strcmp(have, building)) {
    fprintf(stderr, "velo-project: %s holds a projection of another image (%.80s)\n", root, have);
    return 3;
  }
  if (hl <= 0 && dir_empty(rootfd) != 1) {
    fprintf(stderr, "velo-project: %s exists, is not empty and is not a velo projection\n", root);
    return 3;
  }
  /* Building reads objects: hold the store's shared lock (as every writer does) so gc cannot sweep them
   * mid-build. The fresh path above takes no lock: it reads nothing from the store. */
  char lockpath[PATH_MAX];
  snprintf(lockpath, sizeof lockpath, "%s/lock", home);
  cleanup_fd int lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lockfd < 0 || flock(lockfd, LOCK_SH) < 0) {
    fprintf(stderr, "velo-project: cannot take the store lock %s: %s\n", lockpath, strerror(errno));
    return 1;
  }
  if (fchmod(rootfd, 0700) < 0 || fsetxattr(rootfd, VELO_XATTR_STAMP, building, strlen(building), 0) < 0) {
    fprintf(stderr, "velo-project: cannot mark %s: %s (the filesystem must support user xattrs)\n", root, strerror(errno));
    return 1;
  }

  struct velo_store st;
  struct velo_view v;
  snprintf(velo_cas, sizeof velo_cas, "%s/cas/blake3", home);
  if (velo_store_open(&st, home, &c.err) < 0) {
    fprintf(stderr, "velo-project: %s\n", c.err.msg);
    return 1;
  }
  c.v = &v;
  int rc = 1;
  struct velo_dir rd;
  struct velo_entry re;
  if (velo_view_init(&v, &st, (const char *const *)argv + 4, n, &c.err) < 0) goto out;
  if (velo_txn_begin(&st, &c.txn, &c.err) < 0) goto out;
  if (velo_view_root(c.txn, &v, &rd, &re, &c.err) < 0) goto out;
  if (walk(&c, rootfd, &rd) < 0) goto out;
  if (fsetxattr(rootfd, VELO_XATTR_STAMP, want, strlen(want), 0) < 0) {
    VELO_FAIL_ERRNO(&c.err, "stamp %s", root);
    goto out;
  }
  if (set_meta_fd(&c, rootfd, &re, root) < 0) goto out;
  printf("{\"state\":\"built\",\"files\":%lu,\"placeholders\":%lu,\"dirs\":%lu,\"symlinks\":%lu,\"others\":%lu,\"skipped\":%lu}\n",
         c.files, c.placeholders, c.dirs, c.symlinks, c.others, c.skipped);
  rc = 0;
out:
  if (rc) fprintf(stderr, "velo-project: %s\n", c.err.msg);
  if (c.txn) mdb_txn_abort(c.txn);
  velo_store_close(&st);
  for (size_t i = 0; i < c.links_cap; i++) free(c.links[i].rel);
  free(c.links);
  return rc;
}

/* ---- wake ---- */
static unsigned long woken;
static int wake_dir(char *path, size_t len, size_t cap) {
  DIR *d = opendir(path);
  if (!d) {
    fprintf(stderr, "velo-project: cannot read %s: %s\n", path, strerror(errno));
    return -1;
  }
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    size_t nl = strlen(de->d_name);
    if (len + nl + 2 >= cap) {
      rc = -1;
      break;
    }
    path[len] = '/';
    memcpy(path + len + 1, de->d_name, nl + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        /* a read-only directory must be writable for the rename into it; restore its mode after */
        int ro = !(st.st_mode & S_IWUSR);
        if (ro) chmod(path, st.st_mode | S_IWUSR);
        rc = wake_dir(path, len + 1 + nl, cap);
        if (ro) chmod(path, st.st_mode & 07777);
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
      } else if (velo_ph_maybe(&st)) {
        struct velo_ph ph;
        if (velo_ph_get_path(path, 0, &ph)) {
          if (velo_ph_materialize(path) < 0) {
            fprintf(stderr, "velo-project: cannot materialize %s: %s\n", path, strerror(errno));
            rc = -1;
          } else {
            woken++;
          }
        }
      }
    }
    path[len] = 0;
  }
  closedir(d);
  return rc;
}

static int cmd_wake(const char *home, const char *root) {
  velo_real_init();
  snprintf(velo_cas, sizeof velo_cas, "%s/cas/blake3", home);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", root);
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') path[--len] = 0;
  struct stat st;
  if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "velo-project: %s is not a directory\n", path);
    return 1;
  }
  int ro = !(st.st_mode & S_IWUSR);
  if (ro) chmod(path, st.st_mode | S_IWUSR);
  int rc = wake_dir(path, len, sizeof path);
  if (ro) chmod(path, st.st_mode & 07777);
  if (rc == 0 && removexattr(path, VELO_XATTR_STAMP) < 0 && errno != ENODATA) {
    fprintf(stderr, "velo-project: cannot unmark %s: %s\n", path, strerror(errno));
    rc = -1;
  }
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
  if (rc == 0) printf("{\"state\":\"woken\",\"materialized\":%lu}\n", woken);
  return rc ? 1 : 0;
}

/* ---- probe: which of these files are placeholders, and of which object? (for velo ingest) ---- */
static int cmd_probe(const char *home) {
  velo_real_init();
  snprintf(velo_cas, sizeof velo_cas, "%s/cas/blake3", home);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getdelim(&line, &cap, 0, stdin)) > 0) {
    if (line[n - 1] == 0) n--;
    line[n] = 0;
    struct stat st;
    struct velo_ph ph;
    if (lstat(line, &st) == 0 && velo_ph_maybe(&st) && velo_ph_get_path(line, 0, &ph)) {
      fwrite(line, 1, (size_t)n + 1, stdout);
      fwrite(ph.obj, 1, strlen(ph.obj) + 1, stdout);
    }
  }
  free(line);
  return ferror(stdout) ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "probe")) return cmd_probe(argv[2]);
  if (argc >= 5 && !strcmp(argv[1], "build")) return cmd_build(argc, argv);
  if (argc == 4 && !strcmp(argv[1], "wake")) return cmd_wake(argv[2], argv[3]);
  if (argc == 3 && !strcmp(argv[1], "stamp")) {
    char have[256];
    ssize_t n = getxattr(argv[2], VELO_XATTR_STAMP, have, sizeof have - 1);
    have[n > 0 ? n : 0] = 0;
    printf("%s\n", have);
    return 0;
  }
  fprintf(stderr, "usage: velo-project build HOME ROOT LAYER_TOP [LAYER ...] | wake HOME ROOT | probe HOME | stamp ROOT\n");
  return 2;
}
