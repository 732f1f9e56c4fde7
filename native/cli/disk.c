#include "disk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/dqblk_xfs.h>
#include <linux/fs.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/quota.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "velo_err.h"

#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif
#ifndef PRJQUOTA
#define PRJQUOTA 2
#endif

/* quotactl on the filesystem of fd (Linux 5.14+): no need to know its block device */
static int quotactl_fd(int fd, int cmd, unsigned id, void *addr) { return (int)syscall(SYS_quotactl_fd, fd, (unsigned)cmd, id, addr); }

/* for the message only: which filesystem lacks what */
static void fs_name(int fd, char *buf, size_t len) {
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  snprintf(buf, len, "%.*s", n > 0 ? (int)n : 1, n > 0 ? path : "?");
}

/* what the user can do, after the message (rtcall.h: "UNSUPPORTED: message\nsuggestion: text") */
#define HOW "\nsuggestion: a disk limit needs project quotas on the store's filesystem and a kernel with quota support: ext4 " \
            "(tune2fs -O project,quota on the unmounted device, mount with prjquota) or xfs (mount with prjquota); " \
            "or put the store (VELO_HOME) on such a filesystem"

/* Project id and inheritance on one dir: files and dirs made under it (by the tenant, or by overlayfs copying up)
 * take the id. A tenant cannot change it back: the seccomp policy refuses FS_IOC_FSSETXATTR (oci.c), and from
 * inside a user namespace the kernel refuses it anyway. */
static int set_project(const char *path, unsigned id, char *err, size_t errlen) {
  cleanup_fd int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct fsxattr fa;
  if (fd < 0 || ioctl(fd, FS_IOC_FSGETXATTR, &fa) < 0) return snprintf(err, errlen, "--disk: %s: %s", path, strerror(errno)), -1;
  fa.fsx_projid = id;
  fa.fsx_xflags |= FS_XFLAG_PROJINHERIT;
  if (ioctl(fd, FS_IOC_FSSETXATTR, &fa) < 0) return snprintf(err, errlen, "UNSUPPORTED: --disk: set the project id of %s: %s" HOW, path, strerror(errno)), -1;
  return 0;
}

int disk_quota_set(const char *dir, const char *const *subs, int n_subs, double bytes, const char *flag, char *err, size_t errlen) {
  cleanup_fd int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) return snprintf(err, errlen, "%s: %s: %s", flag, dir, strerror(errno)), -1;
  char fsn[PATH_MAX];
  struct fs_quota_statv qs = {.qs_version = FS_QSTATV_VERSION1};
  if (quotactl_fd(fd, QCMD(Q_XGETQSTATV, PRJQUOTA), 0, &qs) < 0) {
    int en = errno;
    fs_name(fd, fsn, sizeof fsn);
    return snprintf(err, errlen, "UNSUPPORTED: %s: the filesystem of %s has no project quotas (%s)" HOW, flag, fsn, strerror(en)), -1;
  }
  if (!(qs.qs_flags & FS_QUOTA_PDQ_ENFD)) {
    fs_name(fd, fsn, sizeof fsn);
    return snprintf(err, errlen, "UNSUPPORTED: %s: the filesystem of %s counts project quotas but does not enforce them" HOW, flag, fsn), -1;
  }
  /* the project id: the tenant dir's inode number, unique on this filesystem while the tenant lives; 0 is "no
   * project" and ids must fit in 32 bits (xfs inode numbers may not: refused rather than truncated) */
  if (st.st_ino == 0 || st.st_ino > UINT_MAX) return snprintf(err, errlen, "%s: %s: inode number %llu is not a usable project id", flag, dir, (unsigned long long)st.st_ino), -1;
  unsigned id = (unsigned)st.st_ino;
  char p[PATH_MAX];
  for (int i = 0; i < n_subs; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
    if (set_project(p, id, err, errlen) < 0) return -1;
  }
  struct dqblk q = {.dqb_bhardlimit = (unsigned long long)ceil(bytes / 1024), .dqb_bsoftlimit = 0, .dqb_valid = QIF_BLIMITS};
  if (quotactl_fd(fd, QCMD(Q_SETQUOTA, PRJQUOTA), id, &q) < 0) return snprintf(err, errlen, "%s: set the quota of project %u: %s", flag, id, strerror(errno)), -1;
  return 0;
}

int disk_block_device(const char *path, unsigned *major_out, unsigned *minor_out, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) < 0) return snprintf(err, errlen, "--io-read-bps/--io-write-bps: %s: %s", path, strerror(errno)), -1;
  unsigned ma = major(st.st_dev), mi = minor(st.st_dev);
  char sys[128], p[PATH_MAX + 16];
  snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", ma, mi);
  if (access(sys, F_OK) < 0)
    return snprintf(err, errlen, "UNSUPPORTED: --io-read-bps/--io-write-bps: the store's filesystem at %s (device %u:%u) is not on a block device, so there is no disk to throttle\n"
                    "suggestion: put the store (VELO_HOME) on a disk filesystem (ext4, xfs) to limit its I/O", path, ma, mi), -1;
  snprintf(p, sizeof p, "%s/partition", sys);
  if (access(p, F_OK) == 0) {
    /* a partition: its disk is the parent dir in sysfs */
    char real[PATH_MAX];
    if (!realpath(sys, real)) return snprintf(err, errlen, "--io-read-bps/--io-write-bps: %s: %s", sys, strerror(errno)), -1;
    snprintf(p, sizeof p, "%s/../dev", real);
    FILE *f = fopen(p, "re");
    int ok = f && fscanf(f, "%u:%u", &ma, &mi) == 2;
    if (f) fclose(f);
    if (!ok) return snprintf(err, errlen, "--io-read-bps/--io-write-bps: cannot read the disk of partition %s", sys), -1;
  }
  *major_out = ma;
  *minor_out = mi;
  return 0;
}
