/* velo-bind: a bind mount whose mount point is never reached through a symlink (docs/volumes.md). Mount points
 * velo makes inside a volume (.snapshots/SNAP, .vault) sit in a directory its tenants write: one could swap a mount
 * point for a symlink to anywhere, and mount(8) would follow it — on the host, as root. Here the target is opened
 * with openat2(RESOLVE_NO_SYMLINKS) and the mount attached to that very directory (move_mount by fd).
 *
 *   velo-bind SRC TARGET [--ro] [--nosuid] [--pid PID]
 *       a bind of SRC (a path of this mount namespace) at TARGET (read-only with --ro; nosuid and nodev with
 *       --nosuid, which --pid implies). With
 *       --pid, TARGET is a path of PID's mount namespace (a running tenant's init), entered after the bind is
 *       cloned here; the bind is then idmapped with PID's user namespace when it has one of its own, as the
 *       tenant's own volume binds are. TARGET must be an absolute path to a directory with no symlink on the way.
 *       The bind is private: mounts made below it never propagate back to SRC.
 *
 * Exit 0 on success; otherwise "velo-bind: what: why" on stderr and exit 1. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "../common/velo_err.h"

static bool same_ns(const char *a, const char *b) {
  struct stat x, y;
  return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_ino == y.st_ino && x.st_dev == y.st_dev;
}

static int bind_at(const char *src, const char *target, bool ro, bool nosuid, const char *pid, struct velo_err *e) {
  if (target[0] != '/') return velo_fail(e, 0, "%s: not an absolute path", target);
  if (pid && (!*pid || strspn(pid, "0123456789") != strlen(pid))) return velo_fail(e, 0, "%s: not a pid", pid);
  cleanup_fd int tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) return VELO_FAIL_ERRNO(e, "%s: clone", src);
  /* private: what is mounted below it later never propagates back to SRC's mount (a host whose / is shared, the
   * systemd default, would otherwise show the vault inside the volume's data dir, where a snapshot reads) */
  struct mount_attr a = {.attr_set = (nosuid || pid ? MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV : 0) | (ro ? MOUNT_ATTR_RDONLY : 0), .propagation = MS_PRIVATE};
  char p[64];
  cleanup_fd int userns = -1;
  if (pid) {
    /* a tenant's namespace, never ours: a pid reused by a host process since the caller looked is refused */
    snprintf(p, sizeof p, "/proc/%s/ns/mnt", pid);
    if (same_ns(p, "/proc/self/ns/mnt")) return velo_fail(e, 0, "pid %s is in this mount namespace, not a tenant's", pid);
    snprintf(p, sizeof p, "/proc/%s/ns/user", pid);
    if (!same_ns(p, "/proc/self/ns/user")) {
      userns = open(p, O_RDONLY | O_CLOEXEC);
      if (userns < 0) return VELO_FAIL_ERRNO(e, "%s", p);
      a.attr_set |= MOUNT_ATTR_IDMAP;
      a.userns_fd = (uint64_t)userns;
    }
  }
  if (mount_setattr(tree, "", AT_EMPTY_PATH, &a, sizeof a) < 0) return VELO_FAIL_ERRNO(e, "%s: set the bind's attributes%s", src, userns >= 0 ? " (idmapped)" : "");
  if (pid) {
    snprintf(p, sizeof p, "/proc/%s/ns/mnt", pid);
    cleanup_fd int mntns = open(p, O_RDONLY | O_CLOEXEC);
    if (mntns < 0) return VELO_FAIL_ERRNO(e, "%s", p);
    /* in there, our root and cwd become the namespace's: TARGET is the tenant's path */
    if (setns(mntns, CLONE_NEWNS) < 0) return VELO_FAIL_ERRNO(e, "enter the mount namespace of %s", pid);
  }
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  cleanup_fd int at = (int)syscall(SYS_openat2, AT_FDCWD, target, &how, sizeof how);
  if (at < 0) return VELO_FAIL_ERRNO(e, "%s%s%s (a directory, reached without a symlink)", target, pid ? " in the namespace of " : "", pid ? pid : "");
  if (move_mount(tree, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) return VELO_FAIL_ERRNO(e, "mount %s at %s", src, target);
  return 0;
}

int main(int argc, char **argv) {
  const char *pid = NULL;
  bool ro = false, nosuid = false;
  const char *pos[2];
  int n = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--ro")) ro = true;
    else if (!strcmp(argv[i], "--nosuid")) nosuid = true;
    else if (!strcmp(argv[i], "--pid") && i + 1 < argc) pid = argv[++i];
    else if (n < 2 && argv[i][0] != '-') pos[n++] = argv[i];
    else n = 3;
  }
  if (n != 2) {
    fprintf(stderr, "usage: velo-bind SRC TARGET [--ro] [--nosuid] [--pid PID]\n");
    return 1;
  }
  struct velo_err e = {0};
  if (bind_at(pos[0], pos[1], ro, nosuid, pid, &e) < 0) {
    fprintf(stderr, "velo-bind: %s\n", e.msg);
    return 1;
  }
  return 0;
}
