#include "mounts.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

static int openat2_in_root(int rootfd, const char *rel, int flags) {
  struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
}

/* Open REL inside the root (symlinks resolve as if the root were '/'), creating missing directories — or,
 * for the last component, an empty file when want_file — on the way. Returns an O_PATH fd. */
static int open_in_root(int rootfd, const char *rel, int want_file, struct velo_err *e) {
  while (*rel == '/') rel++;
  if (!*rel) return (int)fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
  int fd = openat2_in_root(rootfd, rel, O_PATH);
  if (fd >= 0) return fd;
  if (errno != ENOENT) return VELO_FAIL_ERRNO(e, "open /%s in the sandbox root", rel);
  char buf[4096];
  if (strlen(rel) >= sizeof buf) return velo_fail(e, ENAMETOOLONG, "path /%.64s...", rel);
  strcpy(buf, rel);
  for (char *s = buf;; s++) {
    if (*s != '/' && *s != 0) continue;
    int last = *s == 0;
    *s = 0;
    cleanup_fd int cur = openat2_in_root(rootfd, buf, O_PATH);
    if (cur < 0) {
      if (errno != ENOENT) return VELO_FAIL_ERRNO(e, "open /%s in the sandbox root", buf);
      char *slash = strrchr(buf, '/');
      const char *name = slash ? slash + 1 : buf;
      cleanup_fd int parent = slash ? (*slash = 0, openat2_in_root(rootfd, buf, O_PATH | O_DIRECTORY)) : fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
      if (slash) *slash = '/';
      if (parent < 0) return VELO_FAIL_ERRNO(e, "open parent of /%s", buf);
      if (strcmp(name, "..") == 0 || strcmp(name, ".") == 0) return velo_fail(e, EINVAL, "bad path component in /%s", buf);
      if (last && want_file) {
        int f = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (f < 0 && errno != EEXIST) return VELO_FAIL_ERRNO(e, "create /%s", buf);
        if (f >= 0) close(f);
      } else if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
        return VELO_FAIL_ERRNO(e, "mkdir /%s", buf);
      }
    }
    if (last) break;
    *s = '/';
  }
  fd = openat2_in_root(rootfd, rel, O_PATH);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "open /%s in the sandbox root", rel);
  return fd;
}

/* fsopen → fsconfig → fsmount → move_mount onto target_fd. opts: NULL-terminated key,value pairs. */
static int mount_new(const char *type, const char *const *opts, unsigned attrs, int target_fd, const char *where, struct velo_err *e) {
  cleanup_fd int fs = fsopen(type, FSOPEN_CLOEXEC);
  if (fs < 0) return VELO_FAIL_ERRNO(e, "fsopen %s for %s", type, where);
  for (size_t i = 0; opts && opts[i]; i += 2) {
    int r = opts[i + 1] ? fsconfig(fs, FSCONFIG_SET_STRING, opts[i], opts[i + 1], 0) : fsconfig(fs, FSCONFIG_SET_FLAG, opts[i], NULL, 0);
    if (r < 0) return VELO_FAIL_ERRNO(e, "%s option %s=%s for %s", type, opts[i], opts[i + 1] ? opts[i + 1] : "", where);
  }
  if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) return VELO_FAIL_ERRNO(e, "create %s for %s", type, where);
  cleanup_fd int mnt = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
  if (mnt < 0) return VELO_FAIL_ERRNO(e, "fsmount %s for %s", type, where);
  if (move_mount(mnt, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return VELO_FAIL_ERRNO(e, "move_mount %s onto %s", type, where);
  return 0;
}

/* Bind SRC_DIRFD/SRC (a clone of that mount tree) onto target_fd, with attrs set on the clone first. */
static int bind_at(int src_dirfd, const char *src, unsigned attrs, int recursive, int target_fd, const char *where, struct velo_err *e) {
  cleanup_fd int t = open_tree(src_dirfd, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0) | (*src ? 0 : AT_EMPTY_PATH));
  if (t < 0) return VELO_FAIL_ERRNO(e, "open_tree %s for %s", *src ? src : "(fd)", where);
  if (attrs) {
    struct mount_attr a = {.attr_set = attrs};
    if (mount_setattr(t, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0)
      return VELO_FAIL_ERRNO(e, "set attributes of the bind for %s", where);
  }
  if (move_mount(t, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return VELO_FAIL_ERRNO(e, "move_mount bind onto %s", where);
  return 0;
}

static int mount_overlay(const struct plan *p, struct velo_err *e) {
  cleanup_fd int fs = fsopen("overlay", FSOPEN_CLOEXEC);
  if (fs < 0) return VELO_FAIL_ERRNO(e, "fsopen overlay");
  /* lowerdir+ one layer at a time (top first): no 4 KiB option page limit, any number of layers. */
  for (size_t i = 0; i < p->n_lowers; i++)
    if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", p->lowers[i], 0) < 0) return VELO_FAIL_ERRNO(e, "overlay lowerdir+ %s", p->lowers[i]);
  if (fsconfig(fs, FSCONFIG_SET_STRING, "upperdir", p->upper, 0) < 0) return VELO_FAIL_ERRNO(e, "overlay upperdir %s", p->upper);
  if (fsconfig(fs, FSCONFIG_SET_STRING, "workdir", p->work, 0) < 0) return VELO_FAIL_ERRNO(e, "overlay workdir %s", p->work);
  /* upper dirs are tenant-controlled: never trust metacopy xattrs in them */
  if (fsconfig(fs, FSCONFIG_SET_STRING, "metacopy", "off", 0) < 0) return VELO_FAIL_ERRNO(e, "overlay metacopy=off");
  if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) return VELO_FAIL_ERRNO(e, "create overlay (lower %zu layers, upper %s)", p->n_lowers, p->upper);
  cleanup_fd int mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV);
  if (mnt < 0) return VELO_FAIL_ERRNO(e, "fsmount overlay");
  if (move_mount(mnt, "", AT_FDCWD, p->root, MOVE_MOUNT_F_EMPTY_PATH) < 0) return VELO_FAIL_ERRNO(e, "move_mount overlay onto %s", p->root);
  return 0;
}

struct devnode {
  const char *name;
  unsigned maj, min;
};
static const struct devnode DEVICES[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

static int setup_dev(int rootfd, struct velo_err *e) {
  cleanup_fd int target = open_in_root(rootfd, "dev", 0, e);
  if (target < 0) return -1;
  const char *const tmpfs_opts[] = {"mode", "0755", "size", "65536k", NULL};
  if (mount_new("tmpfs", tmpfs_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, target, "/dev", e) < 0) return -1;
  cleanup_fd int dev = openat2_in_root(rootfd, "dev", O_DIRECTORY | O_RDONLY);
  if (dev < 0) return VELO_FAIL_ERRNO(e, "open /dev");
  mode_t old = umask(0);
  for (size_t i = 0; i < sizeof DEVICES / sizeof DEVICES[0]; i++) {
    if (mknodat(dev, DEVICES[i].name, S_IFCHR | 0666, makedev(DEVICES[i].maj, DEVICES[i].min)) < 0) {
      umask(old);
      return VELO_FAIL_ERRNO(e, "mknod /dev/%s", DEVICES[i].name);
    }
  }
  umask(old);
  if (mkdirat(dev, "pts", 0755) < 0 || mkdirat(dev, "shm", 01777) < 0 || fchmodat(dev, "shm", 01777, 0) < 0) return VELO_FAIL_ERRNO(e, "mkdir /dev/pts, /dev/shm");
  cleanup_fd int pts = openat(dev, "pts", O_PATH | O_CLOEXEC | O_NOFOLLOW);
  const char *const pts_opts[] = {"newinstance", NULL, "ptmxmode", "0666", "mode", "0620", "gid", "5", NULL};
  if (pts < 0 || mount_new("devpts", pts_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, pts, "/dev/pts", e) < 0) return pts < 0 ? VELO_FAIL_ERRNO(e, "open /dev/pts") : -1;
  cleanup_fd int shm = openat(dev, "shm", O_PATH | O_CLOEXEC | O_NOFOLLOW);
  const char *const shm_opts[] = {"mode", "1777", "size", "65536k", NULL};
  if (shm < 0 || mount_new("tmpfs", shm_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, shm, "/dev/shm", e) < 0) return shm < 0 ? VELO_FAIL_ERRNO(e, "open /dev/shm") : -1;
  static const char *const links[][2] = {{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
                                         {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    if (symlinkat(links[i][0], dev, links[i][1]) < 0) return VELO_FAIL_ERRNO(e, "symlink /dev/%s", links[i][1]);
  return 0;
}

/* Mount over each of /proc's NAMES that exists: a read-only bind of itself (src < 0, recursive) or of src. */
static int cover_proc(int proc, const char *const *names, size_t n, int src, unsigned attrs, struct velo_err *e) {
  for (size_t i = 0; i < n; i++) {
    cleanup_fd int t = openat(proc, names[i], O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (t < 0) {
      if (errno == ENOENT) continue;
      return VELO_FAIL_ERRNO(e, "open /proc/%s", names[i]);
    }
    char where[64];
    snprintf(where, sizeof where, "/proc/%s", names[i]);
    if (bind_at(src < 0 ? t : src, "", attrs, src < 0, t, where, e) < 0) return -1;
  }
  return 0;
}

static int setup_proc(int rootfd, struct velo_err *e) {
  cleanup_fd int target = open_in_root(rootfd, "proc", 0, e);
  if (target < 0) return -1;
  if (mount_new("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, target, "/proc", e) < 0) return -1;
  cleanup_fd int proc = openat2_in_root(rootfd, "proc", O_PATH | O_DIRECTORY);
  if (proc < 0) return VELO_FAIL_ERRNO(e, "open /proc");
  /* Read-only: sysctls (most check only the file mode, which root passes), sysrq, irq, bus, fs. */
  static const char *const ro[] = {"sys", "sysrq-trigger", "irq", "bus", "fs"};
  if (cover_proc(proc, ro, sizeof ro / sizeof ro[0], -1,
                 MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, e) < 0)
    return -1;
  /* Masked: kernel memory, keys and timer/scheduler internals read as an empty /dev/null. */
  static const char *const masked[] = {"kcore", "keys", "timer_list", "sched_debug", "kallsyms"};
  cleanup_fd int null = openat2_in_root(rootfd, "dev/null", O_PATH);
  if (null < 0) return VELO_FAIL_ERRNO(e, "open /dev/null");
  return cover_proc(proc, masked, sizeof masked / sizeof masked[0], null, MOUNT_ATTR_RDONLY, e);
}

static int setup_sys(int rootfd, struct velo_err *e) {
  cleanup_fd int target = open_in_root(rootfd, "sys", 0, e);
  if (target < 0) return -1;
  if (mount_new("sysfs", NULL, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, target, "/sys", e) < 0) return -1;
  cleanup_fd int fw = openat2_in_root(rootfd, "sys/firmware", O_PATH | O_DIRECTORY);
  if (fw >= 0) {
    const char *const o[] = {"size", "0", NULL};
    if (mount_new("tmpfs", o, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, fw, "/sys/firmware", e) < 0) return -1;
  }
  return 0;
}

static int setup_binds(const struct plan *p, int rootfd, struct velo_err *e) {
  for (size_t i = 0; i < p->n_binds; i++) {
    const struct bind *b = &p->binds[i];
    struct stat st;
    if (stat(b->src, &st) < 0) return VELO_FAIL_ERRNO(e, "bind source %s", b->src);
    cleanup_fd int t = open_in_root(rootfd, b->dst, !S_ISDIR(st.st_mode), e);
    if (t < 0) return -1;
    unsigned attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (b->ro ? MOUNT_ATTR_RDONLY : 0);
    if (bind_at(AT_FDCWD, b->src, attrs, 1, t, b->dst, e) < 0) return -1;
  }
  return 0;
}

int setup_mounts(const struct plan *p, struct velo_err *e) {
  /* Nothing we mount may propagate back to the host. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return VELO_FAIL_ERRNO(e, "make / private");
  if (mount_overlay(p, e) < 0) return -1;
  cleanup_fd int rootfd = open(p->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return VELO_FAIL_ERRNO(e, "open root %s", p->root);
  if (setup_dev(rootfd, e) < 0) return -1;
  if (setup_proc(rootfd, e) < 0) return -1;
  if (setup_sys(rootfd, e) < 0) return -1;
  if (setup_binds(p, rootfd, e) < 0) return -1;
  return 0;
}
