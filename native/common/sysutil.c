#include "sysutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int write_file_at(int dirfd, const char *path, const char *data, struct velo_err *e) {
  cleanup_fd int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "open %s", path);
  if (write_all(fd, data, strlen(data)) < 0) return VELO_FAIL_ERRNO(e, "write %s to %s", data, path);
  return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t n, mode_t mode) {
  char tmp[4200];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", name) >= sizeof tmp) return errno = ENAMETOOLONG, -1;
  unlinkat(dirfd, tmp, 0);
  int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  int r = write_all(fd, data, n);
  int en = errno;
  close(fd);
  if (r == 0 && renameat(dirfd, tmp, dirfd, name) == 0) return 0;
  if (r == 0) en = errno;
  unlinkat(dirfd, tmp, 0);
  errno = en;
  return -1;
}

int proc_starttime(pid_t pid, unsigned long long *start, char *state) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* comm may hold spaces and parens: fields start after the last ')' */
  if (!p || p[1] != ' ') return -1;
  p += 2;
  if (state) *state = *p;
  /* p is at field 3 (state); start time is field 22 */
  for (int f = 3; f < 22; f++) {
    p = strchr(p, ' ');
    if (!p) return -1;
    p++;
  }
  *start = strtoull(p, NULL, 10);
  return 0;
}

/* fs.rmSync(p, {recursive, force}) below an open dir */
int rm_tree_at(int dfd, const char *name) {
  if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return -1;
  int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return -1;
  }
  struct dirent *de;
  int r = 0;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (rm_tree_at(fd, de->d_name) < 0) r = -1;
  }
  closedir(d);
  if (r < 0) return -1;
  return unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
}

int loopback_up(struct velo_err *e) {
  cleanup_fd int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return VELO_FAIL_ERRNO(e, "socket for loopback");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) return VELO_FAIL_ERRNO(e, "get flags of lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) return VELO_FAIL_ERRNO(e, "bring lo up");
  return 0;
}
