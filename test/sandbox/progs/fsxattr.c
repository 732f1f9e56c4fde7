/* fsxattr FILE: FS_IOC_FSGETXATTR, then FS_IOC_FSSETXATTR with the same attributes (a no-op a filesystem takes);
 * prints "get ok|get ERR" and "set ok|set ERR". For the test that tenants cannot touch project ids. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) return perror(argv[1]), 1;
  struct fsxattr fa;
  if (ioctl(fd, FS_IOC_FSGETXATTR, &fa) < 0) return printf("get %s\n", strerror(errno)), 1;
  printf("get ok\n");
  printf("set %s\n", ioctl(fd, FS_IOC_FSSETXATTR, &fa) < 0 ? strerror(errno) : "ok");
  return 0;
}
