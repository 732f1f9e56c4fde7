/* mounts.c: the container's filesystem view (runtime-spec 1.x, Linux): root, mounts, linux.rootfsPropagation,
 * linux.devices, linux.maskedPaths, linux.readonlyPaths, pivot_root.
 *
 * Safety model: every path INSIDE the container is resolved with
 * openat2(RESOLVE_IN_ROOT) against an fd of the rootfs, so a symlink planted in the rootfs (at a destination,
 * or anywhere on the way to it) resolves as if the rootfs were "/" and can never send a mount to the host.
 * Filesystems are created with fsopen/fsconfig/fsmount and bind mounts are cloned with open_tree; both are
 * attached with move_mount onto the O_PATH fd that resolution produced, so nothing re-walks a path string
 * between the check and the mount. Bind SOURCES are host paths (the user's choice, as in runc), relative ones
 * relative to the bundle.
 *
 * Differences from runc 1.1 (the reference), chosen on purpose:
 *  - a root.path whose last component is a symlink is refused (runc follows it; a rootfs that silently points
 *    out of the bundle is a classic foot-gun and the issue asks for a clear error); symlinks in the parent
 *    dirs are resolved with realpath, as runc does.
 *  - a relative mounts[].destination is refused (runc warns and prefixes "/"); so is any ".." component.
 *  - uidMappings/gidMappings (idmapped mounts) are taken on a bind mount, and on the "/" overlay (below), when
 *    they equal the container's own linux.uidMappings/gidMappings in a new user namespace: the mount is then made
 *    by the parent in the host's user namespace (idmapping needs privilege over the filesystem) and handed to the
 *    container's process, which attaches it. Other mappings, idmap/ridmap, acl/noacl, iversion/noiversion and a
 *    non-empty linux.mountLabel are refused: velo-runtime does not implement them and will not ignore them.
 *  - superblock-only flags (sync, dirsync, mand, lazytime and their negations) and filesystem data (mode=,
 *    size=) on a bind mount are ignored, exactly as the kernel ignores them on MS_BIND (and runc passes them).
 *  - a "cgroup" mount with "ro": the hierarchies are read-only and the tmpfs under them stays writable, as
 *    runc 1.1 does (engines compare what a container sees); on a hybrid host, like runc 1.1, the unified (v2) tree is NOT added to a "cgroup"
 *    mount; mount "cgroup2" for it.
 *  - "cgroup2" without a cgroup namespace binds the container's own unified dir instead of mounting the whole
 *    host hierarchy.
 *  - an existing non-directory at a device path that is not already that device is replaced (runc keeps
 *    whatever the image put there).
 *
 * VELO EXTENSION: a mounts[] entry whose destination is "/" (usually an overlay) is mounted onto the rootfs
 * itself, first, before any other mount, inside the container's mount namespace (whatever its position in
 * mounts[]). velo's sandboxes put the tenant's overlay there so it lives and dies with the container: no mount
 * is ever made on the host. At most one such entry. With uidMappings/gidMappings (a container in a new user
 * namespace) its LOWER layers are idmapped with the container's user namespace and the overlay is mounted by the
 * parent in the host's user namespace (overlayfs refuses to idmap an overlay mount itself, and an overlay mounted
 * inside the user namespace would store its xattrs as user.*): the tenant sees the image's owners as they are,
 * while what it writes lands in the upper dir under its own host ids. Layers are passed to overlayfs by file
 * descriptor (Linux 6.13+), by path before that; on kernels without lowerdir+= (before 6.8) any overlay's layers go
 * into one classic lowerdir= option, by short fd-relative names (overlay_classic).
 */
#include <dirent.h>
#include <linux/capability.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "runtime.h"

/* ------------------------------------------------------------------------------------------------ paths */

static int openat2_in_root(int rootfd, const char *rel, int flags) {
  while (*rel == '/') rel++;
  if (!*rel) rel = ".";
  struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
}

/* Open PATH inside the root (symlinks resolve as if the root were "/"), creating missing directories on the
 * way and, for the last component, an empty file when want_file. Returns an O_PATH fd.
 * Missing parts are created where the path leads *inside* the root: the walk resolves one component at a
 * time, a symlink's target replaces it (an absolute target restarts at the root, ".." stops at the root), so
 * a dangling link such as evil -> ../../../host/dir makes <root>/host/dir, never a host directory (runc does
 * the same with securejoin). At most 40 links, as the kernel. */
static int open_in_root(int rootfd, const char *path, bool want_file, struct velo_err *e) {
  while (*path == '/') path++;
  int fd = openat2_in_root(rootfd, path, O_PATH);
  if (fd >= 0) return fd;
  if (errno != ENOENT) return VELO_FAIL_ERRNO(e, "open /%s in the rootfs", path);
  char todo[2 * PATH_MAX], done[PATH_MAX] = "";
  if (strlen(path) >= PATH_MAX) return velo_fail(e, ENAMETOOLONG, "/%.64s...", path);
  strcpy(todo, path);
  int links = 0;
  size_t pos = 0;
  while (todo[pos]) {
    while (todo[pos] == '/') pos++;
    if (!todo[pos]) break;
    size_t len = strcspn(todo + pos, "/");
    char comp[NAME_MAX + 1];
    if (len > NAME_MAX) return velo_fail(e, ENAMETOOLONG, "/%s in the rootfs", path);
    memcpy(comp, todo + pos, len);
    comp[len] = 0;
    pos += len;
    bool last = todo[pos + strspn(todo + pos, "/")] == 0;
    if (!strcmp(comp, ".")) continue;
    if (!strcmp(comp, "..")) {
      char *sl = strrchr(done, '/');
      if (sl) *sl = 0;
      else done[0] = 0;
      continue;
    }
    cleanup_fd int dir = openat2_in_root(rootfd, done, O_PATH | O_DIRECTORY);
    if (dir < 0) return VELO_FAIL_ERRNO(e, "open /%s in the rootfs", done);
    struct stat st;
    int sr = fstatat(dir, comp, &st, AT_SYMLINK_NOFOLLOW);
    if (sr < 0 && errno != ENOENT) return VELO_FAIL_ERRNO(e, "open /%s/%s in the rootfs", done, comp);
    if (sr == 0 && S_ISLNK(st.st_mode)) {
      if (++links > 40) return velo_fail(e, ELOOP, "/%s in the rootfs", path);
      char target[PATH_MAX];
      ssize_t n = readlinkat(dir, comp, target, sizeof target - 1);
      if (n < 0) return VELO_FAIL_ERRNO(e, "read the link /%s/%s in the rootfs", done, comp);
      target[n] = 0;
      char rest[2 * PATH_MAX];
      size_t tl = strlen(target), rl = strlen(todo + pos);
      if (tl + rl + 2 > sizeof rest) return velo_fail(e, ENAMETOOLONG, "/%s in the rootfs", path);
      memcpy(rest, target, tl);
      rest[tl] = '/';
      memcpy(rest + tl + 1, todo + pos, rl + 1);
      memcpy(todo, rest, tl + rl + 2);
      pos = 0;
      if (target[0] == '/') done[0] = 0;
      continue;
    } else if (sr < 0) {
      if (last && want_file) {
        int f = openat(dir, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (f < 0 && errno != EEXIST) return VELO_FAIL_ERRNO(e, "create /%s/%s in the rootfs", done, comp);
        if (f >= 0) close(f);
      } else if (mkdirat(dir, comp, 0755) < 0 && errno != EEXIST) {
        return VELO_FAIL_ERRNO(e, "mkdir /%s/%s in the rootfs", done, comp);
      }
    }
    size_t dl = strlen(done);
    if (dl + 1 + len + 1 > sizeof done) return velo_fail(e, ENAMETOOLONG, "/%s in the rootfs", path);
    if (dl) done[dl++] = '/';
    strcpy(done + dl, comp);
  }
  fd = openat2_in_root(rootfd, done, O_PATH);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "open /%s in the rootfs", path);
  return fd;
}

/* Clean an absolute container path into out ("//a/./b/" -> "/a/b"); refuse relative paths and "..". */
static int clean_abs(const char *p, const char *where, const char *key, char *out, size_t n, struct velo_err *e) {
  if (p[0] != '/') return cfg_fail(e, where, key, "\"%s\" is not an absolute path", p);
  size_t o = 0;
  for (const char *s = p; *s;) {
    while (*s == '/') s++;
    const char *end = strchrnul(s, '/');
    size_t len = (size_t)(end - s);
    if (len == 2 && !strncmp(s, "..", 2)) return cfg_fail(e, where, key, "\"%s\" has a \"..\" component", p);
    if (len && !(len == 1 && *s == '.')) {
      if (o + 1 + len + 1 > n) return cfg_fail(e, where, key, "path too long");
      out[o++] = '/';
      memcpy(out + o, s, len);
      o += len;
    }
    s = end;
  }
  if (!o) out[o++] = '/';
  out[o] = 0;
  return 0;
}

/* ----------------------------------------------------------------------------------------------- options */

enum okind { K_NOP, K_SET, K_CLR, K_ATIME, K_SB, K_BIND, K_RBIND, K_REMOUNT, K_PROP, K_RSET, K_RCLR, K_RATIME, K_TMPCOPYUP, K_REFUSE };
struct optdef {
  const char *name;
  enum okind k;
  uint64_t v;   /* MOUNT_ATTR_* or MS_* propagation */
  bool rec;     /* recursive propagation */
  const char *why; /* K_REFUSE */
};
static const struct optdef OPTS[] = {
    {"defaults", K_NOP, 0, 0, 0}, {"loud", K_NOP, 0, 0, 0}, {"silent", K_NOP, 0, 0, 0},
    {"ro", K_SET, MOUNT_ATTR_RDONLY, 0, 0}, {"rw", K_CLR, MOUNT_ATTR_RDONLY, 0, 0},
    {"nosuid", K_SET, MOUNT_ATTR_NOSUID, 0, 0}, {"suid", K_CLR, MOUNT_ATTR_NOSUID, 0, 0},
    {"nodev", K_SET, MOUNT_ATTR_NODEV, 0, 0}, {"dev", K_CLR, MOUNT_ATTR_NODEV, 0, 0},
    {"noexec", K_SET, MOUNT_ATTR_NOEXEC, 0, 0}, {"exec", K_CLR, MOUNT_ATTR_NOEXEC, 0, 0},
    {"nodiratime", K_SET, MOUNT_ATTR_NODIRATIME, 0, 0}, {"diratime", K_CLR, MOUNT_ATTR_NODIRATIME, 0, 0},
    {"nosymfollow", K_SET, MOUNT_ATTR_NOSYMFOLLOW, 0, 0}, {"symfollow", K_CLR, MOUNT_ATTR_NOSYMFOLLOW, 0, 0},
    /* atime: the value is the MOUNT_ATTR__ATIME setting; the negations fall back to the kernel default relatime */
    {"noatime", K_ATIME, MOUNT_ATTR_NOATIME, 0, 0}, {"atime", K_ATIME, MOUNT_ATTR_RELATIME, 0, 0},
    {"relatime", K_ATIME, MOUNT_ATTR_RELATIME, 0, 0}, {"norelatime", K_ATIME, MOUNT_ATTR_RELATIME, 0, 0},
    {"strictatime", K_ATIME, MOUNT_ATTR_STRICTATIME, 0, 0}, {"nostrictatime", K_ATIME, MOUNT_ATTR_RELATIME, 0, 0},
    /* superblock flags: the VFS parses these names in fsconfig for every filesystem */
    {"sync", K_SB, 0, 0, 0}, {"async", K_SB, 0, 0, 0}, {"dirsync", K_SB, 0, 0, 0}, {"mand", K_SB, 0, 0, 0},
    {"nomand", K_SB, 0, 0, 0}, {"lazytime", K_SB, 0, 0, 0}, {"nolazytime", K_SB, 0, 0, 0},
    {"bind", K_BIND, 0, 0, 0}, {"rbind", K_RBIND, 0, 0, 0}, {"remount", K_REMOUNT, 0, 0, 0},
    {"private", K_PROP, MS_PRIVATE, 0, 0}, {"rprivate", K_PROP, MS_PRIVATE, 1, 0},
    {"shared", K_PROP, MS_SHARED, 0, 0}, {"rshared", K_PROP, MS_SHARED, 1, 0},
    {"slave", K_PROP, MS_SLAVE, 0, 0}, {"rslave", K_PROP, MS_SLAVE, 1, 0},
    {"unbindable", K_PROP, MS_UNBINDABLE, 0, 0}, {"runbindable", K_PROP, MS_UNBINDABLE, 1, 0},
    /* recursive attributes (mount_setattr AT_RECURSIVE over the whole mounted tree) */
    {"rro", K_RSET, MOUNT_ATTR_RDONLY, 0, 0}, {"rrw", K_RCLR, MOUNT_ATTR_RDONLY, 0, 0},
    {"rnosuid", K_RSET, MOUNT_ATTR_NOSUID, 0, 0}, {"rsuid", K_RCLR, MOUNT_ATTR_NOSUID, 0, 0},
    {"rnodev", K_RSET, MOUNT_ATTR_NODEV, 0, 0}, {"rdev", K_RCLR, MOUNT_ATTR_NODEV, 0, 0},
    {"rnoexec", K_RSET, MOUNT_ATTR_NOEXEC, 0, 0}, {"rexec", K_RCLR, MOUNT_ATTR_NOEXEC, 0, 0},
    {"rnodiratime", K_RSET, MOUNT_ATTR_NODIRATIME, 0, 0}, {"rdiratime", K_RCLR, MOUNT_ATTR_NODIRATIME, 0, 0},
    {"rnosymfollow", K_RSET, MOUNT_ATTR_NOSYMFOLLOW, 0, 0}, {"rsymfollow", K_RCLR, MOUNT_ATTR_NOSYMFOLLOW, 0, 0},
    {"rnoatime", K_RATIME, MOUNT_ATTR_NOATIME, 0, 0}, {"ratime", K_RATIME, MOUNT_ATTR_RELATIME, 0, 0},
    {"rrelatime", K_RATIME, MOUNT_ATTR_RELATIME, 0, 0}, {"rnorelatime", K_RATIME, MOUNT_ATTR_RELATIME, 0, 0},
    {"rstrictatime", K_RATIME, MOUNT_ATTR_STRICTATIME, 0, 0}, {"rnostrictatime", K_RATIME, MOUNT_ATTR_RELATIME, 0, 0},
    {"tmpcopyup", K_TMPCOPYUP, 0, 0, 0},
    {"idmap", K_REFUSE, 0, 0, "idmapped mounts are not supported by velo-runtime"},
    {"ridmap", K_REFUSE, 0, 0, "idmapped mounts are not supported by velo-runtime"},
    {"acl", K_REFUSE, 0, 0, "MS_POSIXACL is not supported by velo-runtime"},
    {"noacl", K_REFUSE, 0, 0, "MS_POSIXACL is not supported by velo-runtime"},
    {"iversion", K_REFUSE, 0, 0, "MS_I_VERSION is not supported by velo-runtime"},
    {"noiversion", K_REFUSE, 0, 0, "MS_I_VERSION is not supported by velo-runtime"},
};

json_object *oci_mount_options_json(void) {
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < sizeof OPTS / sizeof OPTS[0]; i++)
    if (OPTS[i].k != K_REFUSE) json_object_array_add(a, json_object_new_string(OPTS[i].name));
  return a;
}

static const struct optdef *find_opt(const char *name) {
  for (size_t i = 0; i < sizeof OPTS / sizeof OPTS[0]; i++)
    if (!strcmp(OPTS[i].name, name)) return &OPTS[i];
  return NULL;
}

/* One mounts[] entry, parsed. Strings point into the config. */
struct mspec {
  size_t idx;
  char where[32];          /* "mounts[3]" */
  char dest[PATH_MAX];     /* cleaned, absolute */
  const char *type, *source;
  json_object *options;
  bool bind, rbind, remount, is_root, tmpcopyup;
  bool idmap;              /* uidMappings/gidMappings given (checked equal to the container's) */
  uint64_t set, clr;       /* top-mount attributes */
  int atime;               /* -1: not given */
  uint64_t rset, rclr;     /* recursive attributes */
  int ratime;
  uint64_t prop;           /* MS_* propagation after mounting, 0: none */
  bool prop_rec;
  char data[65536];        /* the filesystem options ("mode=755,size=65536k"; an overlay's lowerdir+ list) */
};

static const char *const MOUNT_KEYS[] = {"destination", "type", "source", "options", "uidMappings", "gidMappings", NULL};

static int parse_mount(json_object *m, size_t idx, struct mspec *s, struct velo_err *e) {
  memset(s, 0, sizeof *s);
  s->idx = idx;
  s->atime = s->ratime = -1;
  snprintf(s->where, sizeof s->where, "mounts[%zu]", idx);
  if (!json_object_is_type(m, json_type_object)) return cfg_fail(e, s->where, NULL, "expected an object");
  if (cfg_only_keys(m, s->where, MOUNT_KEYS, e) < 0) return -1;
  {
    cleanup_free char *um = NULL;
    cleanup_free char *gm = NULL;
    int ru = oci_id_maps(m, s->where, "uidMappings", &um, e), rg = ru < 0 ? -1 : oci_id_maps(m, s->where, "gidMappings", &gm, e);
    if (ru < 0 || rg < 0) return -1;
    if (ru != rg) return cfg_fail(e, s->where, ru ? "uidMappings" : "gidMappings", "an idmapped mount needs both uidMappings and gidMappings");
    s->idmap = ru == 0;
  }
  const char *dest = NULL;
  int r = cfg_str(m, "destination", s->where, &dest, e);
  if (r < 0) return -1;
  if (r == 1 || !*dest) return cfg_fail(e, s->where, "destination", "required");
  if (clean_abs(dest, s->where, "destination", s->dest, sizeof s->dest, e) < 0) return -1;
  s->is_root = !strcmp(s->dest, "/");
  s->type = "";
  s->source = "";
  if (cfg_str(m, "type", s->where, &s->type, e) < 0 || cfg_str(m, "source", s->where, &s->source, e) < 0) return -1;
  if ((r = cfg_arr(m, "options", s->where, &s->options, e)) < 0) return -1;
  size_t dl = 0;
  for (size_t i = 0; s->options && i < json_object_array_length(s->options); i++) {
    json_object *o = json_object_array_get_idx(s->options, i);
    char key[32];
    snprintf(key, sizeof key, "options[%zu]", i);
    if (!json_object_is_type(o, json_type_string)) return cfg_fail(e, s->where, key, "expected a string");
    const char *v = json_object_get_string(o);
    if (!*v || strchr(v, ',')) return cfg_fail(e, s->where, key, "\"%s\": one option per entry, not empty", v);
    const struct optdef *d = find_opt(v);
    if (!d) { /* filesystem data */
      size_t n = strlen(v);
      if (dl + n + 2 > sizeof s->data) return cfg_fail(e, s->where, "options", "filesystem options longer than %zu bytes", sizeof s->data);
      if (dl) s->data[dl++] = ',';
      memcpy(s->data + dl, v, n + 1);
      dl += n;
      continue;
    }
    switch (d->k) {
    case K_REFUSE: return cfg_fail(e, s->where, key, "%s", d->why);
    case K_SET: s->set |= d->v; s->clr &= ~d->v; break;
    case K_CLR: s->clr |= d->v; s->set &= ~d->v; break;
    case K_ATIME:
      /* the negations only undo their own flag ("noatime,norelatime" stays noatime) */
      if (!strcmp(v, "atime") ? s->atime == MOUNT_ATTR_NOATIME : !strcmp(v, "nostrictatime") ? s->atime == MOUNT_ATTR_STRICTATIME : !strcmp(v, "norelatime") ? s->atime == -1 : true)
        s->atime = (int)d->v;
      break;
    case K_RSET: s->rset |= d->v; s->rclr &= ~d->v; break;
    case K_RCLR: s->rclr |= d->v; s->rset &= ~d->v; break;
    case K_RATIME: s->ratime = (int)d->v; break;
    case K_BIND: s->bind = true; break;
    case K_RBIND: s->bind = s->rbind = true; break;
    case K_REMOUNT: s->remount = true; break;
    case K_PROP: s->prop = d->v; s->prop_rec = d->rec; break;
    case K_TMPCOPYUP: s->tmpcopyup = true; break;
    case K_SB: case K_NOP: break;
    }
  }
  if (!strcmp(s->type, "bind") || !strcmp(s->type, "rbind")) {
    s->bind = true;
    if (!strcmp(s->type, "rbind")) s->rbind = true;
  }
  if (!s->bind && !s->remount && !*s->type) return cfg_fail(e, s->where, "type", "required unless the options hold bind or rbind");
  if (s->bind && !*s->source) return cfg_fail(e, s->where, "source", "required for a bind mount");
  /* filesystem data on a bind ("mode=755", "size=1k") means nothing to a bind: the kernel ignores it with
   * MS_BIND, as it ignores the superblock flags, and so does runc; it is dropped, not passed on */
  if (s->bind) s->data[0] = 0;
  if (s->tmpcopyup && (strcmp(s->type, "tmpfs") || s->bind || s->remount))
    return cfg_fail(e, s->where, "options", "tmpcopyup is only for a new tmpfs mount");
  if ((!strcmp(s->type, "cgroup") || !strcmp(s->type, "cgroup2")) && !s->bind && *s->data)
    return cfg_fail(e, s->where, "options", "\"%s\": a %s mount takes no filesystem options", s->data, s->type);
  if (s->is_root && s->remount) return cfg_fail(e, s->where, "options", "remount of \"/\" is not supported");
  return 0;
}

/* Bind sources are host paths; relative ones are relative to the bundle. */
static int bind_source(const char *bundle, const struct mspec *s, char *out, size_t n, struct velo_err *e) {
  int w = s->source[0] == '/' ? snprintf(out, n, "%s", s->source) : snprintf(out, n, "%s/%s", bundle, s->source);
  if (w < 0 || (size_t)w >= n) return cfg_fail(e, s->where, "source", "path too long");
  return 0;
}

static int parse_propagation(json_object *config, unsigned long *flags, struct velo_err *e) {
  *flags = 0;
  json_object *linux_ = cfg_get(config, "linux");
  const char *p;
  int r = cfg_str(linux_, "rootfsPropagation", "linux", &p, e);
  if (r < 0) return -1;
  if (r == 1 || !*p) return 0;
  static const struct { const char *n; unsigned long f; } T[] = {
      {"private", MS_PRIVATE}, {"rprivate", MS_PRIVATE | MS_REC}, {"slave", MS_SLAVE}, {"rslave", MS_SLAVE | MS_REC},
      {"shared", MS_SHARED}, {"rshared", MS_SHARED | MS_REC}, {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC}};
  for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
    if (!strcmp(p, T[i].n)) return (*flags = T[i].f), 0;
  return cfg_fail(e, "linux", "rootfsPropagation", "\"%s\": expected one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable", p);
}

/* ------------------------------------------------------------------------------------------------ devices */

struct devspec {
  char path[PATH_MAX];
  char type;
  uint64_t major, minor;
  mode_t mode;
  uint32_t uid, gid;
};

static const char *const DEV_KEYS[] = {"path", "type", "major", "minor", "fileMode", "uid", "gid", NULL};

static int parse_device(json_object *d, size_t idx, struct devspec *s, struct velo_err *e) {
  char where[48];
  snprintf(where, sizeof where, "linux.devices[%zu]", idx);
  memset(s, 0, sizeof *s);
  if (!json_object_is_type(d, json_type_object)) return cfg_fail(e, where, NULL, "expected an object");
  if (cfg_only_keys(d, where, DEV_KEYS, e) < 0) return -1;
  const char *p, *t;
  int r = cfg_str(d, "path", where, &p, e);
  if (r < 0) return -1;
  if (r == 1 || !*p) return cfg_fail(e, where, "path", "required");
  if (clean_abs(p, where, "path", s->path, sizeof s->path, e) < 0) return -1;
  if (!strcmp(s->path, "/")) return cfg_fail(e, where, "path", "\"/\" is not a device path");
  if ((r = cfg_str(d, "type", where, &t, e)) < 0) return -1;
  if (r == 1 || strlen(t) != 1 || !strchr("cbup", t[0])) return cfg_fail(e, where, "type", "expected \"c\", \"b\", \"u\" or \"p\"");
  s->type = t[0];
  int rm = cfg_u64(d, "major", where, &s->major, e), rn = rm < 0 ? -1 : cfg_u64(d, "minor", where, &s->minor, e);
  if (rm < 0 || rn < 0) return -1;
  if (s->type != 'p' && (rm == 1 || rn == 1)) return cfg_fail(e, where, rm == 1 ? "major" : "minor", "required for a type \"%c\" device", s->type);
  if (s->major > 0xfff || s->minor > 0xfffff) return cfg_fail(e, where, s->major > 0xfff ? "major" : "minor", "out of range");
  uint64_t v = 0666;
  if ((r = cfg_u64(d, "fileMode", where, &v, e)) < 0) return -1;
  if (v & ~(uint64_t)07777) return cfg_fail(e, where, "fileMode", "%#llo: only permission bits (07777) may be set", (unsigned long long)v);
  s->mode = (mode_t)v;
  uint64_t id = 0;
  if ((r = cfg_u64(d, "uid", where, &id, e)) < 0) return -1;
  if (id > UINT32_MAX - 1) return cfg_fail(e, where, "uid", "out of range");
  s->uid = (uint32_t)id;
  id = 0;
  if ((r = cfg_u64(d, "gid", where, &id, e)) < 0) return -1;
  if (id > UINT32_MAX - 1) return cfg_fail(e, where, "gid", "out of range");
  s->gid = (uint32_t)id;
  return 0;
}

static int path_list(json_object *linux_, const char *key, struct velo_err *e) {
  json_object *a;
  int r = cfg_arr(linux_, key, "linux", &a, e);
  if (r) return r < 0 ? -1 : 0;
  for (size_t i = 0; i < json_object_array_length(a); i++) {
    json_object *p = json_object_array_get_idx(a, i);
    char k[64], buf[PATH_MAX];
    snprintf(k, sizeof k, "%s[%zu]", key, i);
    if (!json_object_is_type(p, json_type_string)) return cfg_fail(e, "linux", k, "expected a string");
    if (clean_abs(json_object_get_string(p), "linux", k, buf, sizeof buf, e) < 0) return -1;
    if (!strcmp(buf, "/")) return cfg_fail(e, "linux", k, "\"/\" cannot be masked or made read-only this way");
  }
  return 0;
}

/* ----------------------------------------------------------------------------------------------- validate */

/* A mount's uidMappings/gidMappings: only the container's own, in a new user namespace, on a bind or the "/" overlay. */
static int idmap_validate(bool new_userns, json_object *linux_, json_object *mnt, const struct mspec *s, struct velo_err *e) {
  if (!s->bind && !(s->is_root && !strcmp(s->type, "overlay")))
    return cfg_fail(e, s->where, "uidMappings", "velo-runtime idmaps bind mounts and the \"/\" overlay only, not a %s mount", s->type);
  if (s->remount) return cfg_fail(e, s->where, "uidMappings", "not with remount");
  if (!new_userns) return cfg_fail(e, s->where, "uidMappings", "an idmapped mount needs a new user namespace in linux.namespaces");
  static const char *const K[] = {"uidMappings", "gidMappings"};
  for (int k = 0; k < 2; k++) {
    cleanup_free char *mine = NULL;
    cleanup_free char *ctr = NULL;
    if (oci_id_maps(mnt, s->where, K[k], &mine, e) < 0 || oci_id_maps(linux_, "linux", K[k], &ctr, e) < 0) return -1;
    if (!ctr || strcmp(mine, ctr))
      return cfg_fail(e, s->where, K[k], "velo-runtime idmaps a mount with the container's own linux.%s only", K[k]);
  }
  return 0;
}

int oci_mounts_validate(json_object *config, const char *bundle, bool new_userns, char **rootfs_out, struct velo_err *e) {
  *rootfs_out = NULL;
  json_object *root;
  int r = cfg_obj(config, "root", "", &root, e);
  if (r < 0) return -1;
  if (r == 1) return cfg_fail(e, NULL, "root", "required");
  static const char *const ROOT_KEYS[] = {"path", "readonly", NULL};
  if (cfg_only_keys(root, "root", ROOT_KEYS, e) < 0) return -1;
  const char *path;
  bool ro;
  if ((r = cfg_str(root, "path", "root", &path, e)) < 0) return -1;
  if (r == 1 || !*path) return cfg_fail(e, "root", "path", "required");
  if (cfg_bool(root, "readonly", "root", &ro, e) < 0) return -1;
  char joined[PATH_MAX];
  int w = path[0] == '/' ? snprintf(joined, sizeof joined, "%s", path) : snprintf(joined, sizeof joined, "%s/%s", bundle, path);
  if (w < 0 || (size_t)w >= sizeof joined) return cfg_fail(e, "root", "path", "path too long");
  /* Trailing slashes would make lstat follow the final symlink: strip them so it is seen. */
  for (size_t n = strlen(joined); n > 1 && joined[n - 1] == '/'; n--) joined[n - 1] = 0;
  struct stat st;
  if (lstat(joined, &st) < 0) return cfg_fail(e, "root", "path", "%s: %s", joined, strerror(errno));
  if (S_ISLNK(st.st_mode))
    return cfg_fail(e, "root", "path", "%s is a symlink; velo-runtime refuses a symlinked rootfs (give the directory itself)", joined);
  if (!S_ISDIR(st.st_mode)) return cfg_fail(e, "root", "path", "%s is not a directory", joined);
  char *real = realpath(joined, NULL);
  if (!real) return cfg_fail(e, "root", "path", "%s: %s", joined, strerror(errno));

  json_object *linux_ = NULL;
  json_object *mounts;
  if (cfg_obj(config, "linux", "", &linux_, e) < 0 || (r = cfg_arr(config, "mounts", "", &mounts, e)) < 0) goto fail;
  size_t roots = 0;
  for (size_t i = 0; r == 0 && i < json_object_array_length(mounts); i++) {
    struct mspec s;
    if (parse_mount(json_object_array_get_idx(mounts, i), i, &s, e) < 0) goto fail;
    if (s.is_root && ++roots > 1) { cfg_fail(e, s.where, "destination", "a second mount at \"/\""); goto fail; }
    if (s.idmap && idmap_validate(new_userns, linux_, json_object_array_get_idx(mounts, i), &s, e) < 0) goto fail;
    if (s.bind) { /* a missing source is a config error: say so before anything is created */
      char src[PATH_MAX];
      if (bind_source(bundle, &s, src, sizeof src, e) < 0) goto fail;
      if (stat(src, &st) < 0) { cfg_fail(e, s.where, "source", "%s: %s", src, strerror(errno)); goto fail; }
    }
  }
  unsigned long prop;
  if (parse_propagation(config, &prop, e) < 0) goto fail;
  json_object *devs;
  if ((r = cfg_arr(linux_, "devices", "linux", &devs, e)) < 0) goto fail;
  for (size_t i = 0; r == 0 && i < json_object_array_length(devs); i++) {
    struct devspec d;
    if (parse_device(json_object_array_get_idx(devs, i), i, &d, e) < 0) goto fail;
  }
  if (path_list(linux_, "maskedPaths", e) < 0 || path_list(linux_, "readonlyPaths", e) < 0) goto fail;
  const char *label;
  if ((r = cfg_str(linux_, "mountLabel", "linux", &label, e)) < 0) goto fail;
  if (r == 0 && *label) { cfg_fail(e, "linux", "mountLabel", "SELinux labels are not supported by velo-runtime"); goto fail; }
  *rootfs_out = real;
  return 0;
fail:
  free(real);
  return -1;
}

/* ---------------------------------------------------------------------------------------- mount primitives */

static int set_attrs(int mnt, bool recursive, uint64_t set, uint64_t clr, int atime, const char *what, struct velo_err *e) {
  struct mount_attr a = {.attr_set = set, .attr_clr = clr};
  if (atime >= 0) {
    a.attr_clr |= MOUNT_ATTR__ATIME;
    a.attr_set = (a.attr_set & ~(uint64_t)MOUNT_ATTR__ATIME) | (uint64_t)atime;
  }
  if (!a.attr_set && !a.attr_clr) return 0;
  if (mount_setattr(mnt, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0)
    return VELO_FAIL_ERRNO(e, "%s: set mount attributes", what);
  return 0;
}

static int set_propagation(int mnt, uint64_t prop, bool recursive, const char *what, struct velo_err *e) {
  if (!prop) return 0;
  struct mount_attr a = {.propagation = prop};
  if (mount_setattr(mnt, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0)
    return VELO_FAIL_ERRNO(e, "%s: set propagation", what);
  return 0;
}

/* Pass "k=v,flag,..." to fsconfig, one parameter at a time (no page-size limit on the whole string). */
static int fs_data(int fs, const char *data, const char *what, struct velo_err *e) {
  cleanup_free char *buf = strdup(data);
  if (!buf) return velo_fail(e, ENOMEM, "%s", what);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (eq) *eq = 0;
    int r = eq ? fsconfig(fs, FSCONFIG_SET_STRING, tok, eq + 1, 0) : fsconfig(fs, FSCONFIG_SET_FLAG, tok, NULL, 0);
    if (r < 0) {
      if (eq) *eq = '=';
      return VELO_FAIL_ERRNO(e, "%s: option %s", what, tok);
    }
  }
  return 0;
}

/* The superblock flags among a mount's options (sync, dirsync, ...), and "ro" when the mount is read-only
 * (a fresh read-only mount gets a read-only superblock, as mount(2) with MS_RDONLY gives). */
static int fs_sbflags(int fs, const struct mspec *s, const char *what, struct velo_err *e) {
  for (size_t i = 0; s->options && i < json_object_array_length(s->options); i++) {
    const char *v = json_object_get_string(json_object_array_get_idx(s->options, i));
    const struct optdef *d = find_opt(v);
    if (d && d->k == K_SB && fsconfig(fs, FSCONFIG_SET_FLAG, v, NULL, 0) < 0) return VELO_FAIL_ERRNO(e, "%s: option %s", what, v);
  }
  if ((s->set & MOUNT_ATTR_RDONLY) && fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0) return VELO_FAIL_ERRNO(e, "%s: option ro", what);
  return 0;
}

/* Overlayfs reads and writes its upper dir with the credentials of whoever created it. A holder of
 * CAP_SYS_RESOURCE is exempt from disk quota hard limits (ext4's project quota on a tenant's upper dir) and may
 * use the blocks a filesystem reserves for root: with the runtime's own credentials the tenant's writes would be
 * too. So an overlay is created with that one capability dropped from the effective set, and it is put back after. */
struct sys_resource_cap {
  struct __user_cap_header_struct h;
  struct __user_cap_data_struct d[2];
  bool dropped;
};

static void sys_resource_drop(struct sys_resource_cap *c) {
  c->h = (struct __user_cap_header_struct){.version = _LINUX_CAPABILITY_VERSION_3};
  c->dropped = false;
  if (syscall(SYS_capget, &c->h, c->d) < 0 || !(c->d[0].effective & (1u << CAP_SYS_RESOURCE))) return;
  struct __user_cap_data_struct d[2] = {c->d[0], c->d[1]};
  d[0].effective &= ~(1u << CAP_SYS_RESOURCE);
  c->dropped = syscall(SYS_capset, &c->h, d) == 0;
}

static void sys_resource_restore(struct sys_resource_cap *c) {
  if (c->dropped && syscall(SYS_capset, &c->h, c->d) < 0) _exit(1); /* never carry on with the wrong capabilities */
}

/* FSCONFIG_CMD_CREATE; an overlay without CAP_SYS_RESOURCE (above) */
static int fs_create(int fs, bool overlay, const char *what, const char *type, struct velo_err *e) {
  struct sys_resource_cap cap = {.dropped = false};
  if (overlay) sys_resource_drop(&cap);
  int created = fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0), en = errno;
  sys_resource_restore(&cap);
  return created < 0 ? velo_fail(e, en, "%s: create the %s filesystem", what, type) : 0;
}

/* A new filesystem: fsopen, options, fsmount with attrs, move_mount onto target. Returns the mount's fd. */
static int mount_new(const char *type, const char *source, const char *data, const struct mspec *s, uint64_t attrs, int atime,
                     int target, const char *what, struct velo_err *e) {
  cleanup_fd int fs = fsopen(type, FSOPEN_CLOEXEC);
  if (fs < 0) return VELO_FAIL_ERRNO(e, "%s: fsopen %s", what, type);
  if (source && *source && fsconfig(fs, FSCONFIG_SET_STRING, "source", source, 0) < 0) return VELO_FAIL_ERRNO(e, "%s: source %s", what, source);
  if (data && fs_data(fs, data, what, e) < 0) return -1;
  if (s && fs_sbflags(fs, s, what, e) < 0) return -1;
  if (!s && (attrs & MOUNT_ATTR_RDONLY) && fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0) return VELO_FAIL_ERRNO(e, "%s: option ro", what);
  if (fs_create(fs, !strcmp(type, "overlay"), what, type, e) < 0) return -1;
  unsigned a = (unsigned)(attrs & ~(uint64_t)MOUNT_ATTR__ATIME) | (unsigned)(atime >= 0 ? atime : 0);
  int mnt = fsmount(fs, FSMOUNT_CLOEXEC, a);
  if (mnt < 0) return VELO_FAIL_ERRNO(e, "%s: fsmount %s", what, type);
  if (move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
    VELO_FAIL_ERRNO(e, "%s: attach the %s mount", what, type);
    close(mnt);
    return -1;
  }
  return mnt;
}

/* A bind: clone src (fd, AT_EMPTY_PATH) — the whole tree when recursive — set top attrs on the clone, then
 * attach. Returns the mount's fd. */
static int bind_fd(int src, bool recursive, uint64_t set, uint64_t clr, int atime, int target, const char *what, struct velo_err *e) {
  int t = open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0));
  if (t < 0) return VELO_FAIL_ERRNO(e, "%s: clone the bind source", what);
  if (set_attrs(t, false, set, clr, atime, what, e) < 0 ||
      (move_mount(t, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0 && VELO_FAIL_ERRNO(e, "%s: attach the bind", what))) {
    close(t);
    return -1;
  }
  return t;
}

/* ------------------------------------------------------------------------------------------------ cgroups */

static const struct cg_hier *unified_of(const struct oci_cgroup *cg) {
  for (size_t i = 0; cg && i < cg->n; i++)
    if (!*cg->h[i].controllers) return &cg->h[i];
  return NULL;
}

/* cgroup2 at target: a fresh cgroup2 fs inside a cgroup namespace (its root is the container's cgroup), else
 * a bind of the container's own unified dir, never the whole host hierarchy. */
static int mount_cgroup2(const struct oci_mount_ctx *m, const struct mspec *s, int target, const char *what, struct velo_err *e) {
  uint64_t attrs = s->set | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
  if (m->new_cgroupns) return mount_new("cgroup2", "cgroup2", NULL, s, attrs, s->atime, target, what, e);
  const struct cg_hier *u = unified_of(m->cg);
  if (!u) return velo_fail(e, 0, "%s: no cgroup v2 hierarchy for the container (and no cgroup namespace)", what);
  cleanup_fd int src = open(u->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (src < 0) return VELO_FAIL_ERRNO(e, "%s: open %s", what, u->path);
  return bind_fd(src, true, attrs, s->clr, s->atime, target, what, e);
}

/* "cgroup" on a v1/hybrid host, as runc: a tmpfs, then one mount per v1 hierarchy named like the host's mount
 * dir (cpu,cpuacct, memory, systemd...), and a symlink per controller of a combined hierarchy. */
static int fill_cgroup_v1(const struct oci_mount_ctx *m, const struct mspec *s, int tmp, const char *what, struct velo_err *e) {
  const uint64_t dflt = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
  for (size_t i = 0; i < m->cg->n; i++) {
    const struct cg_hier *h = &m->cg->h[i];
    if (!*h->controllers) continue; /* the unified tree: runc 1.1 leaves it out too; mount "cgroup2" for it */
    const char *name = strrchr(h->mountpoint, '/');
    name = name ? name + 1 : h->mountpoint;
    char hw[PATH_MAX + 64];
    snprintf(hw, sizeof hw, "%.4000s/%.100s", what, name);
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) return velo_fail(e, 0, "%s: bad hierarchy mountpoint %s", what, h->mountpoint);
    if (mkdirat(tmp, name, 0755) < 0 && errno != EEXIST) return VELO_FAIL_ERRNO(e, "%s: mkdir", hw);
    cleanup_fd int sub = openat(tmp, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) return VELO_FAIL_ERRNO(e, "%s: open", hw);
    int mnt;
    if (m->new_cgroupns && !m->userns) {
      /* A fresh mount of this hierarchy: inside the cgroup namespace its root is the container's cgroup. (Not in
       * a user namespace: v1 hierarchies cannot be mounted there; the bind below shows the container's own.) */
      char data[512];
      snprintf(data, sizeof data, "%s", h->controllers);
      mnt = mount_new("cgroup", strncmp(h->controllers, "name=", 5) ? "cgroup" : h->controllers + 5, data, s, s->set | dflt, s->atime, sub, hw, e);
    } else {
      cleanup_fd int src = open(h->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (src < 0) return VELO_FAIL_ERRNO(e, "%s: open %s", hw, h->path);
      mnt = bind_fd(src, true, s->set | dflt, s->clr, s->atime, sub, hw, e);
    }
    if (mnt < 0) return -1;
    close(mnt);
    if (strchr(name, ',')) {
      char parts[256];
      snprintf(parts, sizeof parts, "%s", name);
      char *save = NULL;
      for (char *c = strtok_r(parts, ",", &save); c; c = strtok_r(NULL, ",", &save))
        if (symlinkat(name, tmp, c) < 0 && errno != EEXIST) return VELO_FAIL_ERRNO(e, "%s: symlink %s -> %s", what, c, name);
    }
  }
  return 0;
}

static int mount_cgroup_v1(const struct oci_mount_ctx *m, const struct mspec *s, int target, const char *what, struct velo_err *e) {
  int tmp = mount_new("tmpfs", "tmpfs", "mode=755", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, -1, target, what, e);
  if (tmp >= 0 && fill_cgroup_v1(m, s, tmp, what, e) < 0) {
    close(tmp);
    return -1;
  }
  return tmp;
}

/* tmpcopyup (Podman's --read-only tmpfs mounts): what the rootfs had at the destination is copied into the new
 * tmpfs — files, directories, links, fifos and device nodes with their modes and owners; never following a
 * link, so nothing outside the rootfs is read. */
static int copy_tree(int from, int to, const char *what, int depth, struct velo_err *e) {
  if (depth > 64) return velo_fail(e, ELOOP, "%s: tmpcopyup: directories nested too deep", what);
  int dfd = fcntl(from, F_DUPFD_CLOEXEC, 3);
  DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
  if (!d) return dfd >= 0 ? (close(dfd), VELO_FAIL_ERRNO(e, "%s: tmpcopyup: read the directory", what)) : VELO_FAIL_ERRNO(e, "%s: tmpcopyup", what);
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    const char *n = de->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
    struct stat st;
    if (fstatat(from, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      rc = VELO_FAIL_ERRNO(e, "%s: tmpcopyup: stat %s", what, n);
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      cleanup_fd int sd = openat(from, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sd < 0 || (mkdirat(to, n, st.st_mode & 07777) < 0 && errno != EEXIST)) rc = VELO_FAIL_ERRNO(e, "%s: tmpcopyup: %s", what, n);
      cleanup_fd int dd = rc ? -1 : openat(to, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (!rc && dd < 0) rc = VELO_FAIL_ERRNO(e, "%s: tmpcopyup: %s", what, n);
      if (!rc) rc = copy_tree(sd, dd, what, depth + 1, e);
      if (!rc && (fchmod(dd, st.st_mode & 07777) < 0 || fchown(dd, st.st_uid, st.st_gid) < 0)) rc = VELO_FAIL_ERRNO(e, "%s: tmpcopyup: %s", what, n);
    } else if (S_ISREG(st.st_mode)) {
      cleanup_fd int sf = openat(from, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      cleanup_fd int df = sf < 0 ? -1 : openat(to, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 07777);
      if (sf < 0 || df < 0) rc = VELO_FAIL_ERRNO(e, "%s: tmpcopyup: %s", what, n);
      for (off_t left = st.st_size; !rc && left > 0;) {
        ssize_t k = copy_file_range(sf, NULL, df, NULL, (size_t)left, 0);
        if (k < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) k = sendfile(df, sf, NULL, (size_t)left);
        if (k <= 0) rc = k < 0 ? VELO_FAIL_ERRNO(e, "%s: tmpcopyup: copy %s", what, n) : 0, left = 0;
        else left -= k;
      }
      if (!rc && (fchown(df, st.st_uid, st.st_gid) < 0 || fchmod(df, st.st_mode & 07777) < 0)) rc = VELO_FAIL_ERRNO(e, "%s: tmpcopyup: %s", what, n);
    } else if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t k = readlinkat(from, n, target, sizeof target - 1);
      if (k < 0) rc = VELO_FAIL_ERRNO(e, "%s: tmpcopyup: readlink %s", what, n);
      else {
        target[k] = 0;
        if (symlinkat(target, to, n) < 0 || fchownat(to, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) rc = VELO_FAIL_ERRNO(e, "%s: tmpcopyup: symlink %s", what, n);
      }
    } else if (mknodat(to, n, st.st_mode, st.st_rdev) < 0 || fchownat(to, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
      rc = VELO_FAIL_ERRNO(e, "%s: tmpcopyup: mknod %s", what, n);
    }
  }
  closedir(d);
  return rc;
}

/* ------------------------------------------------------------------------------------------ idmapped mounts */

/* A clone of path (the whole tree when recursive) idmapped with userns_fd, and attrs on it. Returns its fd. */
static int idmapped_clone(const char *path, bool recursive, int userns_fd, const struct mspec *s, const char *what, struct velo_err *e) {
  int t = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
  if (t < 0) return VELO_FAIL_ERRNO(e, "%s: clone %s", what, path);
  struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
  if (mount_setattr(t, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0) {
    VELO_FAIL_ERRNO(e, "%s: idmap %s (does its filesystem support idmapped mounts?)", what, path);
    close(t);
    return -1;
  }
  if (s && set_attrs(t, false, s->set, s->clr, s->atime, what, e) < 0) {
    close(t);
    return -1;
  }
  return t;
}

/* A private mount namespace of ours, for as long as an overlay takes to create, with mount points in a temporary
 * dir: overlayfs takes a layer by path only from a mount of the mounter's namespace (idmapped clones before 6.13
 * are attached here), and mount(2) needs a mount point (the classic overlay before 6.8). Overlayfs clones each
 * layer privately, so the namespace can go once the overlay exists; we go back to our own. */
struct private_mnt {
  int own_mnt;          /* our mount namespace, to go back to; -1: not entered */
  char base[64];        /* mkdtemp dir holding the mount points base/0, base/1, ... */
  int n;
};

static int private_mnt_begin(struct private_mnt *b, const char *what, struct velo_err *e) {
  b->n = 0;
  b->own_mnt = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  if (b->own_mnt < 0) return VELO_FAIL_ERRNO(e, "%s: open our mount namespace", what);
  snprintf(b->base, sizeof b->base, "/tmp/velo-runtime-layers-XXXXXX");
  if (!mkdtemp(b->base) || unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    VELO_FAIL_ERRNO(e, "%s: a private mount namespace for the overlay's layers", what);
    rmdir(b->base);
    close(b->own_mnt);
    b->own_mnt = -1;
    return -1;
  }
  return 0;
}

/* a new mount point base/N, its path in out */
static int private_mnt_dir(struct private_mnt *b, char *out, size_t len, const char *what, struct velo_err *e) {
  snprintf(out, len, "%s/%d", b->base, b->n);
  if (mkdir(out, 0700) < 0) return VELO_FAIL_ERRNO(e, "%s: mkdir %s", what, out);
  b->n++;
  return 0;
}

static void private_mnt_end(struct private_mnt *b) {
  if (b->own_mnt < 0) return;
  if (setns(b->own_mnt, CLONE_NEWNS) < 0) _exit(1); /* never carry on in the wrong mount namespace */
  close(b->own_mnt);
  b->own_mnt = -1;
  char p[96];
  for (int i = 0; i < b->n; i++) {
    snprintf(p, sizeof p, "%s/%d", b->base, i);
    rmdir(p);
  }
  rmdir(b->base);
}

/* ----------------------------------------------------------------------- overlays on kernels before 6.8 */

/* Does overlayfs take lowerdir+= (one layer per parameter, Linux 6.8+)? On 6.5-6.7 the parameter is unknown
 * (EINVAL); before 6.5 overlayfs is not on the new mount API at all: fsconfig only collects parameters into a
 * legacy option string, so any name is accepted until create — hence the second probe, a made-up flag that a
 * real parser refuses. VELO_RUNTIME_OVERLAY_CLASSIC=1 takes the classic route on any kernel, so that it is
 * tested on a current one too. */
static bool overlay_takes_lowerdir_plus(void) {
  static int known = -1;
  if (known >= 0) return known;
  const char *force = getenv("VELO_RUNTIME_OVERLAY_CLASSIC");
  if (force && !strcmp(force, "1")) return (known = 0);
  int fs = fsopen("overlay", FSOPEN_CLOEXEC);
  if (fs < 0) return (known = 1); /* no overlayfs at all: the mount itself says so */
  known = fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", "/", 0) == 0 && fsconfig(fs, FSCONFIG_SET_FLAG, "velo-probe", NULL, 0) < 0;
  close(fs);
  return known;
}

/* An overlay's options split into its lower layers (lowerdir+= one each, lowerdir= a colon-separated list;
 * top first) and the rest, comma-joined. The layer strings point into buf (a copy of the options, cut up). */
struct overlay_opts {
  char *buf;
  char **layers;
  size_t n;
  char rest[sizeof ((struct mspec *)0)->data];
};

static void overlay_opts_free(struct overlay_opts *o) {
  free(o->buf);
  free(o->layers);
}

static int overlay_opts_split(const char *data, struct overlay_opts *o, const char *what, struct velo_err *e) {
  memset(o, 0, sizeof *o);
  o->buf = strdup(data);
  o->layers = calloc(strlen(data) / 2 + 1, sizeof *o->layers); /* a layer takes at least "x," */
  if (!o->buf || !o->layers) return velo_fail(e, ENOMEM, "%s", what);
  size_t rl = 0;
  char *save = NULL;
  for (char *tok = strtok_r(o->buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    bool plus = !strncmp(tok, "lowerdir+=", 10), list = !strncmp(tok, "lowerdir=", 9);
    if (plus) {
      o->layers[o->n++] = tok + 10;
    } else if (list) {
      char *s2 = NULL;
      for (char *d = strtok_r(tok + 9, ":", &s2); d; d = strtok_r(NULL, ":", &s2)) o->layers[o->n++] = d;
    } else if (!strncmp(tok, "datadir+=", 9)) {
      return velo_fail(e, EINVAL, "%s: datadir+= needs Linux 6.8 or later", what);
    } else {
      size_t l = strlen(tok);
      if (rl) o->rest[rl++] = ',';
      memcpy(o->rest + rl, tok, l + 1);
      rl += l;
    }
  }
  if (!o->n) return velo_fail(e, EINVAL, "%s: an overlay needs lower layers", what);
  return 0;
}

/* The mount(2) flags of a new filesystem with s's options: read-only and the superblock flags. */
static unsigned long overlay_sb_msflags(const struct mspec *s) {
  static const struct { const char *name; unsigned long f; } SB[] = {
      {"sync", MS_SYNCHRONOUS}, {"dirsync", MS_DIRSYNC}, {"mand", MS_MANDLOCK}, {"lazytime", MS_LAZYTIME}};
  unsigned long f = (s->set & MOUNT_ATTR_RDONLY) ? MS_RDONLY : 0;
  for (size_t i = 0; s->options && i < json_object_array_length(s->options); i++) {
    const char *v = json_object_get_string(json_object_array_get_idx(s->options, i));
    for (size_t k = 0; k < sizeof SB / sizeof *SB; k++)
      if (!strcmp(v, SB[k].name)) f |= SB[k].f;
  }
  return f;
}

/* The overlay, on a kernel without lowerdir+=: every layer in ONE lowerdir= value, which fsconfig caps at 256
 * bytes and mount(2) at one page (4096). Full paths (a farm's is ~100 bytes) would overflow even the page at
 * about 40 layers, so each layer is opened and named by its fd number, relative to /proc/self/fd as our working
 * directory (overlayfs resolves a relative lowerdir against it): ~4 bytes a layer, and overlayfs's own limit of
 * 500 layers fits in the page. Docker's overlay2 does the same with short symlink names. mount(2) needs a mount
 * point: the overlay is mounted in pm (a private mount namespace we are in; the layers are opened in it, as
 * overlayfs wants mounts of the mounter's namespace), cloned detached (open_tree) and unmounted there. Returns
 * the detached overlay's fd. */
static int overlay_classic(const struct mspec *s, char *const *layers, size_t n, const char *rest, struct private_mnt *pm, const char *what,
                           struct velo_err *e) {
  int rc = -1, cwd = -1, procfd = -1;
  char dir[96];
  int *fds = calloc(n, sizeof *fds);
  char *data = malloc(4096);
  size_t opened = 0;
  if (!fds || !data) {
    velo_fail(e, ENOMEM, "%s", what);
    goto out;
  }
  if (private_mnt_dir(pm, dir, sizeof dir, what, e) < 0) goto out;
  size_t len = (size_t)snprintf(data, 4096, "lowerdir=");
  for (size_t i = 0; i < n && len < 4096; i++) {
    fds[i] = open(layers[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fds[i] < 0) {
      VELO_FAIL_ERRNO(e, "%s: lower layer %s", what, layers[i]);
      goto out;
    }
    opened = i + 1;
    len += (size_t)snprintf(data + len, 4096 - len, "%s%d", i ? ":" : "", fds[i]);
  }
  if (len < 4096 && *rest) len += (size_t)snprintf(data + len, 4096 - len, ",%s", rest);
  if (len >= 4096) {
    velo_fail(e, E2BIG, "%s: %zu layers and the options do not fit in one overlay mount's option page (4096 bytes) on this kernel (before 6.8): overlayfs takes at most 500 layers, and upperdir/workdir paths must leave room", what, n);
    goto out;
  }
  cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  procfd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cwd < 0 || procfd < 0 || fchdir(procfd) < 0) {
    VELO_FAIL_ERRNO(e, "%s: enter /proc/self/fd", what);
    goto out;
  }
  struct sys_resource_cap cap;
  sys_resource_drop(&cap);
  int r = mount(*s->source ? s->source : "overlay", dir, "overlay", overlay_sb_msflags(s), data);
  int saved = errno;
  sys_resource_restore(&cap);
  if (fchdir(cwd) < 0) _exit(1); /* never carry on in the wrong directory */
  if (r < 0) {
    velo_fail(e, saved, "%s: mount the overlay (%zu layers, classic lowerdir= option for a kernel before 6.8)", what, n);
    goto out;
  }
  rc = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (rc < 0) VELO_FAIL_ERRNO(e, "%s: clone the overlay", what);
  umount2(dir, MNT_DETACH);
  if (rc >= 0 && set_attrs(rc, false, s->set, s->clr, s->atime, what, e) < 0) {
    close(rc);
    rc = -1;
  }
out:
  for (size_t i = 0; i < opened; i++) close(fds[i]);
  if (cwd >= 0) close(cwd);
  if (procfd >= 0) close(procfd);
  free(fds);
  free(data);
  return rc;
}

/* A (non-idmapped) overlay from its options on a kernel without lowerdir+=. Returns the detached mount's fd. */
static int overlay_classic_from_data(const struct mspec *s, const char *what, struct velo_err *e) {
  struct overlay_opts o;
  struct private_mnt pm = {.own_mnt = -1};
  int rc = overlay_opts_split(s->data, &o, what, e);
  if (rc == 0) rc = private_mnt_begin(&pm, what, e);
  if (rc == 0) rc = overlay_classic(s, o.layers, o.n, o.rest, &pm, what, e);
  private_mnt_end(&pm);
  overlay_opts_free(&o);
  return rc;
}

/* The "/" overlay with its lower layers idmapped: every layer (lowerdir+= or a lowerdir= list) becomes an idmapped
 * clone, passed by fd (Linux 6.13+), else attached by path in a private mount namespace (6.8-6.12, and any kernel
 * with VELO_RUNTIME_LAYERS_BY_PATH=1), else (before 6.8) put in one classic overlay; the other options as given. */
static int idmapped_overlay(const struct mspec *s, int userns_fd, const char *what, struct velo_err *e) {
  struct overlay_opts o;
  struct private_mnt pm = {.own_mnt = -1};
  int rc = -1, *lfd = NULL;
  size_t made = 0;
  char (*at)[128] = NULL;
  char **paths = NULL;
  cleanup_fd int fs = -1;
  if (overlay_opts_split(s->data, &o, what, e) < 0) goto out;
  lfd = calloc(o.n, sizeof *lfd);
  at = calloc(o.n, sizeof *at);
  paths = calloc(o.n, sizeof *paths);
  if (!lfd || !at || !paths) {
    velo_fail(e, ENOMEM, "%s", what);
    goto out;
  }
  const bool classic = !overlay_takes_lowerdir_plus();
  const char *force = getenv("VELO_RUNTIME_LAYERS_BY_PATH");
  bool by_fd = !classic && !(force && !strcmp(force, "1"));
  if (!classic) {
    fs = fsopen("overlay", FSOPEN_CLOEXEC);
    if (fs < 0) {
      VELO_FAIL_ERRNO(e, "%s: fsopen overlay", what);
      goto out;
    }
    if (*s->source && fsconfig(fs, FSCONFIG_SET_STRING, "source", s->source, 0) < 0) {
      VELO_FAIL_ERRNO(e, "%s: source %s", what, s->source);
      goto out;
    }
  }
  /* a detached clone is unmounted when its last fd closes: the layers stay open until the overlay exists */
  for (size_t i = 0; i < o.n; i++) {
    /* overlayfs clones a layer privately: one mount, not a tree */
    lfd[i] = idmapped_clone(o.layers[i], false, userns_fd, NULL, what, e);
    if (lfd[i] < 0) goto out;
    made = i + 1;
    if (by_fd && fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, lfd[i]) < 0) {
      /* before 6.13 overlayfs takes no layer fds: EINVAL, or EBADF where it reads the fd as a path (6.12) */
      if ((errno != EINVAL && errno != EBADF) || i > 0) {
        VELO_FAIL_ERRNO(e, "%s: idmapped lower layer %s by file descriptor", what, o.layers[i]);
        goto out;
      }
      by_fd = false;
    }
    if (by_fd) continue;
    if ((pm.own_mnt < 0 && private_mnt_begin(&pm, what, e) < 0) || private_mnt_dir(&pm, at[i], sizeof at[i], what, e) < 0) goto out;
    if (move_mount(lfd[i], "", AT_FDCWD, at[i], MOVE_MOUNT_F_EMPTY_PATH) < 0) {
      VELO_FAIL_ERRNO(e, "%s: attach an idmapped layer at %s", what, at[i]);
      goto out;
    }
    paths[i] = at[i];
    if (!classic && fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", at[i], 0) < 0) {
      VELO_FAIL_ERRNO(e, "%s: idmapped lower layer %s (at %s)", what, o.layers[i], at[i]);
      goto out;
    }
  }
  if (classic) {
    rc = overlay_classic(s, paths, o.n, o.rest, &pm, what, e);
    goto out;
  }
  if (fs_data(fs, o.rest, what, e) < 0 || fs_sbflags(fs, s, what, e) < 0 || fs_create(fs, true, what, "overlay", e) < 0) goto out;
  unsigned a = (unsigned)(s->set & ~(uint64_t)MOUNT_ATTR__ATIME) | (unsigned)(s->atime >= 0 ? s->atime : 0);
  rc = fsmount(fs, FSMOUNT_CLOEXEC, a);
  if (rc < 0) VELO_FAIL_ERRNO(e, "%s: fsmount overlay", what);
out:
  private_mnt_end(&pm);
  for (size_t i = 0; i < made; i++) close(lfd[i]);
  overlay_opts_free(&o);
  free(lfd);
  free(at);
  free(paths);
  return rc;
}

int oci_mounts_prepare_idmapped(json_object *config, const char *bundle, int userns_fd, int *fds, size_t n, struct velo_err *e) {
  for (size_t i = 0; i < n; i++) fds[i] = -1;
  json_object *mounts = cfg_get(config, "mounts");
  size_t cnt = mounts ? json_object_array_length(mounts) : 0;
  struct mspec *s = malloc(sizeof *s);
  if (!s) return VELO_FAIL_ERRNO(e, "malloc");
  cleanup_free struct mspec *s_free = s;
  for (size_t i = 0; i < cnt && i < n; i++) {
    if (parse_mount(json_object_array_get_idx(mounts, i), i, s, e) < 0) return -1;
    if (s->bind && !s->idmap && !s->remount) {
      /* A plain bind: its source is the host's path, which the container's root (an unprivileged host uid) may
       * not be allowed to reach (a dir under a 0700 /root): cloned here with the host's rights, as runc does.
       * Where this fails (no privilege: rootless; a source only the child's context resolves, /proc/...), the
       * child binds it itself and reports what goes wrong. */
      char src[PATH_MAX];
      struct velo_err ignore = {0};
      if (strncmp(s->source, "/proc/", 6) == 0 || bind_source(bundle, s, src, sizeof src, &ignore) < 0) continue;
      int t = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (s->rbind ? AT_RECURSIVE : 0));
      if (t >= 0 && set_attrs(t, false, s->set, s->clr, s->atime, s->where, &ignore) < 0) close(t), t = -1;
      fds[i] = t;
      continue;
    }
    if (!s->idmap) continue;
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "%s (idmapped %s on %s)", s->where, s->bind ? "bind" : s->type, s->dest);
    if (s->bind) {
      char src[PATH_MAX];
      if (bind_source(bundle, s, src, sizeof src, e) < 0) return -1;
      fds[i] = idmapped_clone(src, s->rbind, userns_fd, s, what, e);
    } else {
      fds[i] = idmapped_overlay(s, userns_fd, what, e);
    }
    if (fds[i] < 0) return -1;
  }
  return 0;
}

/* -------------------------------------------------------------------------------------------------- setup */

/* The detached mount the parent prepared for s, or -1 */
static int prepared_fd(const struct oci_mount_ctx *m, const struct mspec *s) {
  return m->prepared && s->idx < m->n_prepared ? m->prepared[s->idx] : -1;
}

/* mounts[] entry s onto target (an O_PATH fd inside the rootfs, or the rootfs itself for the "/" extension). */
static int do_mount(const struct oci_mount_ctx *m, const struct mspec *s, int target, struct velo_err *e) {
  char what[PATH_MAX + 64];
  snprintf(what, sizeof what, "%s (%s on %s)", s->where, s->bind ? "bind" : s->type, s->dest);
  cleanup_fd int mnt = -1;
  if (s->remount) {
    /* Change an existing mount at the destination: its superblock (not for a bind) and its attributes. */
    if (!s->bind) {
      cleanup_fd int fs = fspick(target, "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC);
      if (fs < 0) return VELO_FAIL_ERRNO(e, "%s: fspick (remount needs a mount there)", what);
      if (fs_data(fs, s->data, what, e) < 0 || fs_sbflags(fs, s, what, e) < 0) return -1;
      if (!(s->set & MOUNT_ATTR_RDONLY) && (s->clr & MOUNT_ATTR_RDONLY) && fsconfig(fs, FSCONFIG_SET_FLAG, "rw", NULL, 0) < 0)
        return VELO_FAIL_ERRNO(e, "%s: option rw", what);
      if (fsconfig(fs, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0) < 0) return VELO_FAIL_ERRNO(e, "%s: reconfigure", what);
    }
    mnt = (int)fcntl(target, F_DUPFD_CLOEXEC, 3);
    if (set_attrs(mnt, false, s->set, s->clr, s->atime, what, e) < 0) return -1;
  } else if (s->idmap || (s->bind && prepared_fd(m, s) >= 0)) {
    /* made by the parent (oci_mounts_prepare_idmapped: idmapped mounts, and binds it could clone), attached here */
    int pre = prepared_fd(m, s);
    if (pre < 0) return velo_fail(e, 0, "%s: the idmapped mount was not prepared", what);
    if (move_mount(pre, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
      return VELO_FAIL_ERRNO(e, "%s: attach the %s", what, s->idmap ? "idmapped mount" : "bind");
    mnt = (int)fcntl(pre, F_DUPFD_CLOEXEC, 3);
  } else if (s->bind) {
    char src[PATH_MAX];
    if (bind_source(m->bundle, s, src, sizeof src, e) < 0) return -1;
    cleanup_fd int sfd = open(src, O_PATH | O_CLOEXEC);
    if (sfd < 0) return VELO_FAIL_ERRNO(e, "%s: bind source %s", what, src);
    mnt = bind_fd(sfd, s->rbind, s->set, s->clr, s->atime, target, what, e);
  } else if (!strcmp(s->type, "cgroup") && !(m->cg && m->cg->v2)) {
    if (!m->cg) return velo_fail(e, 0, "%s: the container has no cgroup", what);
    mnt = mount_cgroup_v1(m, s, target, what, e);
  } else if (!strcmp(s->type, "cgroup") || !strcmp(s->type, "cgroup2")) {
    mnt = mount_cgroup2(m, s, target, what, e);
  } else if (s->tmpcopyup) {
    /* the directory the tmpfs will cover, opened before it is covered */
    cleanup_fd int under = openat(target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (under < 0) return VELO_FAIL_ERRNO(e, "%s: tmpcopyup: the destination is not a directory", what);
    struct stat ust;
    if (fstat(under, &ust) < 0) return VELO_FAIL_ERRNO(e, "%s: tmpcopyup", what);
    /* written while still writable; a ro tmpfs is made ro after the copy */
    mnt = mount_new(s->type, s->source, s->data, s, s->set & ~MOUNT_ATTR_RDONLY, s->atime, target, what, e);
    if (mnt < 0) return -1;
    cleanup_fd int top = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (top < 0) return VELO_FAIL_ERRNO(e, "%s: tmpcopyup: open the new tmpfs", what);
    if (copy_tree(under, top, what, 0, e) < 0) return -1;
    /* the tmpfs root takes the covered directory's owner, and its mode unless the options set one */
    if (fchown(top, ust.st_uid, ust.st_gid) < 0 || (!strstr(s->data, "mode=") && fchmod(top, ust.st_mode & 07777) < 0))
      return VELO_FAIL_ERRNO(e, "%s: tmpcopyup", what);
    if ((s->set & MOUNT_ATTR_RDONLY) && set_attrs(mnt, false, MOUNT_ATTR_RDONLY, 0, -1, what, e) < 0) return -1;
  } else if (!strcmp(s->type, "overlay") && strstr(s->data, "lowerdir+=") && !overlay_takes_lowerdir_plus()) {
    mnt = overlay_classic_from_data(s, what, e);
    if (mnt >= 0 && move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
      return VELO_FAIL_ERRNO(e, "%s: attach the overlay", what);
  } else {
    mnt = mount_new(s->type, s->source, s->data, s, s->set, s->atime, target, what, e);
  }
  if (mnt < 0) return -1;
  if (set_attrs(mnt, true, s->rset, s->rclr, s->ratime, what, e) < 0) return -1;
  return set_propagation(mnt, s->prop, s->prop_rec, what, e);
}

/* Is s's source a file (a file bind needs an empty file, not a dir, at the destination)? */
static bool source_is_file(const struct oci_mount_ctx *m, const struct mspec *s) {
  char src[PATH_MAX];
  struct stat st;
  if (s->bind && prepared_fd(m, s) >= 0) return fstat(prepared_fd(m, s), &st) == 0 && !S_ISDIR(st.st_mode);
  struct velo_err ignore;
  return s->bind && bind_source(m->bundle, s, src, sizeof src, &ignore) == 0 && stat(src, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* pivot_root refuses a new root whose parent mount is shared: make that one private, only if shared (runc). */
static int parent_mount_private(const char *rootfs, struct velo_err *e) {
  struct statx stx;
  if (statx(AT_FDCWD, rootfs, 0, STATX_MNT_ID, &stx) < 0 || !(stx.stx_mask & STATX_MNT_ID)) return VELO_FAIL_ERRNO(e, "statx %s", rootfs);
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return VELO_FAIL_ERRNO(e, "open /proc/self/mountinfo");
  char *line = NULL;
  size_t cap = 0;
  int rc = 0;
  while (getline(&line, &cap, f) > 0) {
    unsigned long long id;
    char mp[PATH_MAX];
    if (sscanf(line, "%llu %*u %*s %*s %4095s", &id, mp) != 2 || id != stx.stx_mnt_id) continue;
    char *opt = strstr(line, " - ");
    if (opt) *opt = 0;
    if (!strstr(line, " shared:")) break;
    /* unescape \040 etc. */
    char un[PATH_MAX];
    size_t o = 0;
    for (char *p = mp; *p && o + 1 < sizeof un; p++) {
      if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
        un[o++] = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
        p += 3;
      } else un[o++] = *p;
    }
    un[o] = 0;
    if (mount(NULL, un, NULL, MS_PRIVATE, NULL) < 0) rc = VELO_FAIL_ERRNO(e, "make the mount %s (holding the rootfs) private", un);
    break;
  }
  free(line);
  fclose(f);
  return rc;
}

struct defdev { const char *path; unsigned maj, min; };
static const struct defdev DEFAULT_DEVICES[] = {
    {"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7}, {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

/* One device node: mknod (mode/uid/gid exactly), or in a user namespace, where mknod is not allowed, a bind of
 * the host's node at the same path onto an empty file (as runc). */
static int make_device(int rootfd, const struct devspec *d, bool userns, struct velo_err *e) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", d->path);
  char *slash = strrchr(dir, '/');
  const char *name = d->path + (slash - dir) + 1;
  *slash = 0;
  cleanup_fd int parent_p = open_in_root(rootfd, *dir ? dir : "/", false, e);
  if (parent_p < 0) return -1;
  /* the last component of the parent may be a non-directory: make sure it is a directory */
  cleanup_fd int parent = openat(parent_p, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (parent < 0) return VELO_FAIL_ERRNO(e, "device %s: parent is not a directory", d->path);
  mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
  dev_t rdev = d->type == 'p' ? 0 : makedev(d->major, d->minor);
  if (userns && d->type != 'p') {
    int f = openat(parent, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (f < 0) return VELO_FAIL_ERRNO(e, "device %s: create the bind target", d->path);
    close(f);
    cleanup_fd int t = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    cleanup_fd int src = open(d->path, O_PATH | O_CLOEXEC);
    if (t < 0 || src < 0) return VELO_FAIL_ERRNO(e, "device %s: open %s", d->path, t < 0 ? "the bind target" : "the host's node");
    int mnt = bind_fd(src, false, 0, 0, -1, t, d->path, e);
    if (mnt < 0) return -1;
    close(mnt);
    return 0;
  }
  mode_t old = umask(0);
  int r = mknodat(parent, name, type | d->mode, rdev);
  if (r < 0 && errno == EEXIST) {
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == type && st.st_rdev == rdev) {
      r = fchmodat(parent, name, d->mode, 0);
    } else if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
      errno = EISDIR;
    } else if (unlinkat(parent, name, 0) == 0) {
      r = mknodat(parent, name, type | d->mode, rdev);
    }
  }
  umask(old);
  if (r < 0) return VELO_FAIL_ERRNO(e, "device %s: mknod", d->path);
  if (fchownat(parent, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0) return VELO_FAIL_ERRNO(e, "device %s: chown %u:%u", d->path, d->uid, d->gid);
  return 0;
}

static int setup_devices(const struct oci_mount_ctx *m, int rootfd, struct velo_err *e) {
  json_object *linux_ = cfg_get(m->config, "linux"), *devs = cfg_get(linux_, "devices");
  size_t n = devs ? json_object_array_length(devs) : 0;
  struct devspec d;
  for (size_t i = 0; i < sizeof DEFAULT_DEVICES / sizeof DEFAULT_DEVICES[0]; i++) {
    bool overridden = false; /* linux.devices at the same path wins */
    for (size_t j = 0; j < n && !overridden; j++)
      if (parse_device(json_object_array_get_idx(devs, j), j, &d, e) == 0 && !strcmp(d.path, DEFAULT_DEVICES[i].path)) overridden = true;
    if (overridden) continue;
    struct devspec dd = {.type = 'c', .major = DEFAULT_DEVICES[i].maj, .minor = DEFAULT_DEVICES[i].min, .mode = 0666};
    snprintf(dd.path, sizeof dd.path, "%s", DEFAULT_DEVICES[i].path);
    if (make_device(rootfd, &dd, m->userns, e) < 0) return -1;
  }
  for (size_t j = 0; j < n; j++) {
    if (parse_device(json_object_array_get_idx(devs, j), j, &d, e) < 0) return -1;
    if (make_device(rootfd, &d, m->userns, e) < 0) return -1;
  }
  cleanup_fd int dev = open_in_root(rootfd, "/dev", false, e);
  if (dev < 0) return -1;
  cleanup_fd int devd = openat(dev, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (devd < 0) return VELO_FAIL_ERRNO(e, "/dev in the rootfs is not a directory");
  /* /dev/ptmx must be the devpts instance's ptmx: replace whatever is there. */
  if (unlinkat(devd, "ptmx", 0) < 0 && errno != ENOENT) return VELO_FAIL_ERRNO(e, "remove /dev/ptmx");
  if (symlinkat("pts/ptmx", devd, "ptmx") < 0) return VELO_FAIL_ERRNO(e, "symlink /dev/ptmx");
  static const char *const links[][2] = {{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
                                         {"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"}};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    if (!strcmp(links[i][1], "core") && access("/proc/kcore", F_OK) < 0) continue; /* as runc: only if the kernel has it */
    if (symlinkat(links[i][0], devd, links[i][1]) < 0 && errno != EEXIST) return VELO_FAIL_ERRNO(e, "symlink /dev/%s", links[i][1]);
  }
  return 0;
}

/* Each readonlyPaths entry that exists: a recursive bind onto itself, the top made read-only (mount_setattr
 * changes only that bit: nosuid/nodev/noexec stay as they were). */
static int setup_readonly(const struct oci_mount_ctx *m, int rootfd, struct velo_err *e) {
  json_object *a = cfg_get(cfg_get(m->config, "linux"), "readonlyPaths");
  for (size_t i = 0; a && i < json_object_array_length(a); i++) {
    const char *p = json_object_get_string(json_object_array_get_idx(a, i));
    cleanup_fd int t = openat2_in_root(rootfd, p, O_PATH);
    if (t < 0) {
      if (errno == ENOENT) continue;
      return VELO_FAIL_ERRNO(e, "linux.readonlyPaths[%zu]: open %s in the rootfs", i, p);
    }
    char what[PATH_MAX + 40];
    snprintf(what, sizeof what, "linux.readonlyPaths[%zu] (%s)", i, p);
    int mnt = bind_fd(t, true, MOUNT_ATTR_RDONLY, 0, -1, t, what, e);
    if (mnt < 0) return -1;
    close(mnt);
  }
  return 0;
}

/* Each maskedPaths entry that exists: a directory gets an empty read-only tmpfs, anything else /dev/null. The
 * directories share one tmpfs (each a bind of the first): every superblock is a memcg-aware shrinker, and each
 * memory cgroup on the host allocates shrinker state for every one of them (docs/operations.md). */
static int setup_masked(const struct oci_mount_ctx *m, int rootfd, struct velo_err *e) {
  json_object *a = cfg_get(cfg_get(m->config, "linux"), "maskedPaths");
  if (!a || !json_object_array_length(a)) return 0;
  /* The container's /dev/null if it is really the null device (the rootfs could hold anything), else the host's. */
  cleanup_fd int null = openat2_in_root(rootfd, "/dev/null", O_PATH | O_NOFOLLOW);
  struct stat st;
  if (null >= 0 && (fstat(null, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))) {
    close(null);
    null = -1;
  }
  if (null < 0 && (null = open("/dev/null", O_PATH | O_CLOEXEC)) < 0) return VELO_FAIL_ERRNO(e, "open /dev/null");
  cleanup_fd int empty = -1; /* the first masked directory's tmpfs */
  for (size_t i = 0; i < json_object_array_length(a); i++) {
    const char *p = json_object_get_string(json_object_array_get_idx(a, i));
    cleanup_fd int t = openat2_in_root(rootfd, p, O_PATH);
    if (t < 0) {
      if (errno == ENOENT) continue;
      return VELO_FAIL_ERRNO(e, "linux.maskedPaths[%zu]: open %s in the rootfs", i, p);
    }
    if (fstat(t, &st) < 0) return VELO_FAIL_ERRNO(e, "linux.maskedPaths[%zu]: stat %s", i, p);
    char what[PATH_MAX + 40];
    snprintf(what, sizeof what, "linux.maskedPaths[%zu] (%s)", i, p);
    int mnt = !S_ISDIR(st.st_mode) ? bind_fd(null, false, 0, 0, -1, t, what, e)
              : empty >= 0         ? bind_fd(empty, false, MOUNT_ATTR_RDONLY, 0, -1, t, what, e)
                                   : mount_new("tmpfs", "tmpfs", NULL, NULL, MOUNT_ATTR_RDONLY, -1, t, what, e);
    if (mnt < 0) return -1;
    if (S_ISDIR(st.st_mode) && empty < 0)
      empty = mnt;
    else
      close(mnt);
  }
  return 0;
}

int oci_mounts_setup(const struct oci_mount_ctx *m, struct velo_err *e) {
  unsigned long prop;
  if (parse_propagation(m->config, &prop, e) < 0) return -1;
  /* runc: rootfsPropagation as given, else rslave, so host mounts still reach us but nothing goes back. */
  if (mount(NULL, "/", NULL, prop ? prop : MS_SLAVE | MS_REC, NULL) < 0) return VELO_FAIL_ERRNO(e, "set the propagation of /");
  if (parent_mount_private(m->rootfs, e) < 0) return -1;
  {
    cleanup_fd int src = open(m->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (src < 0) return VELO_FAIL_ERRNO(e, "open the rootfs %s", m->rootfs);
    int mnt = bind_fd(src, true, 0, 0, -1, src, "bind the rootfs onto itself", e);
    if (mnt < 0) return -1;
    close(mnt);
  }
  json_object *mounts = cfg_get(m->config, "mounts");
  size_t n = mounts ? json_object_array_length(mounts) : 0;
  struct mspec *s = malloc(sizeof *s);
  if (!s) return VELO_FAIL_ERRNO(e, "malloc");
  cleanup_free struct mspec *s_free = s;
  /* VELO EXTENSION: the "/" mount goes onto the rootfs before anything else. */
  for (size_t i = 0; i < n; i++) {
    if (parse_mount(json_object_array_get_idx(mounts, i), i, s, e) < 0) return -1;
    if (!s->is_root) continue;
    cleanup_fd int rootfd = open(m->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return VELO_FAIL_ERRNO(e, "open the rootfs %s", m->rootfs);
    if (do_mount(m, s, rootfd, e) < 0) return -1;
  }
  /* Opened after the "/" mount, so it is the top of the stack at the rootfs path. */
  cleanup_fd int rootfd = open(m->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return VELO_FAIL_ERRNO(e, "open the rootfs %s", m->rootfs);
  bool dev_from_host = false;
  for (size_t i = 0; i < n; i++) {
    if (parse_mount(json_object_array_get_idx(mounts, i), i, s, e) < 0) return -1;
    if (s->is_root) continue;
    if (!strcmp(s->dest, "/dev") && s->bind) dev_from_host = true;
    cleanup_fd int t = s->remount ? openat2_in_root(rootfd, s->dest, O_PATH) : open_in_root(rootfd, s->dest, source_is_file(m, s), e);
    if (t < 0) return s->remount ? VELO_FAIL_ERRNO(e, "%s: remount: open %s in the rootfs", s->where, s->dest) : -1;
    if (do_mount(m, s, t, e) < 0) return -1;
  }
  if (!dev_from_host && setup_devices(m, rootfd, e) < 0) return -1;
  if (setup_readonly(m, rootfd, e) < 0) return -1;
  return setup_masked(m, rootfd, e);
}

/* ------------------------------------------------------------------------------------------------- finish */

/* --no-pivot (runc's msMoveRoot): detach every mount outside the rootfs that can go, then move the rootfs
 * onto "/" and chroot into it. Weaker than pivot_root (the old root stays reachable to a chroot escape), which
 * is why it is opt-in. */
static int move_root(const char *rootfs, struct velo_err *e) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return VELO_FAIL_ERRNO(e, "open /proc/self/mountinfo");
  char **mps = NULL;
  size_t n = 0, cap = 0, lcap = 0, rl = strlen(rootfs);
  char *line = NULL;
  while (getline(&line, &lcap, f) > 0) {
    char mp[PATH_MAX];
    if (sscanf(line, "%*u %*u %*s %*s %4095s", mp) != 1 || strchr(mp, '\\')) continue;
    size_t ml = strlen(mp);
    bool inside = !strncmp(mp, rootfs, rl) && (mp[rl] == 0 || mp[rl] == '/');
    bool ancestor = !strcmp(mp, "/") || (!strncmp(rootfs, mp, ml) && rootfs[ml] == '/');
    if (inside || ancestor) continue;
    if (n == cap && !(mps = realloc(mps, (cap = cap ? cap * 2 : 64) * sizeof *mps))) break;
    mps[n++] = strdup(mp);
  }
  free(line);
  fclose(f);
  for (size_t i = n; i-- > 0;) { /* mountinfo lists parents first: detach children first */
    if (mps[i]) umount2(mps[i], MNT_DETACH); /* best effort, as runc: a busy or locked one stays */
    free(mps[i]);
  }
  free(mps);
  if (chdir(rootfs) < 0) return VELO_FAIL_ERRNO(e, "chdir %s", rootfs);
  if (mount(rootfs, "/", NULL, MS_MOVE, NULL) < 0) return VELO_FAIL_ERRNO(e, "move the rootfs onto /");
  if (chroot(".") < 0) return VELO_FAIL_ERRNO(e, "chroot into the rootfs");
  if (chdir("/") < 0) return VELO_FAIL_ERRNO(e, "chdir /");
  return 0;
}

int oci_mounts_finish(const struct oci_mount_ctx *m, bool no_pivot, struct velo_err *e) {
  unsigned long prop;
  if (parse_propagation(m->config, &prop, e) < 0) return -1;
  bool ro = false;
  if (cfg_bool(cfg_get(m->config, "root"), "readonly", "root", &ro, e) < 0) return -1;
  if (no_pivot) {
    if (move_root(m->rootfs, e) < 0) return -1;
  } else {
    cleanup_fd int fd = open(m->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return VELO_FAIL_ERRNO(e, "open the rootfs %s", m->rootfs);
    if (fchdir(fd) < 0) return VELO_FAIL_ERRNO(e, "chdir to the rootfs %s", m->rootfs);
    /* pivot_root(".", "."): the old root is stacked on the new one; make it rslave so detaching it cannot
     * propagate to the host, then detach it. */
    if (syscall(SYS_pivot_root, ".", ".") < 0) return VELO_FAIL_ERRNO(e, "pivot_root into %s", m->rootfs);
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) return VELO_FAIL_ERRNO(e, "make the old root rslave");
    if (umount2(".", MNT_DETACH) < 0) return VELO_FAIL_ERRNO(e, "detach the old root");
    if (chdir("/") < 0) return VELO_FAIL_ERRNO(e, "chdir /");
  }
  if (ro) {
    /* Only the rootfs mount itself (not the mounts on it); its other attributes are kept. */
    struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(AT_FDCWD, "/", 0, &a, sizeof a) < 0) return VELO_FAIL_ERRNO(e, "root.readonly: make / read-only");
  }
  /* After the pivot, so it applies to the container's "/", not to a host mount. */
  if (prop && mount(NULL, "/", NULL, prop, NULL) < 0) return VELO_FAIL_ERRNO(e, "linux.rootfsPropagation: set the propagation of /");
  return 0;
}
