#include "util.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

void die_verr(const char *what, const struct velo_err *e) {
  fprintf(stderr, "velo-helper: %s: %s\n", what, e->msg);
  exit(125);
}
