/* Calls every glibc entry point the shim covers, by its exact name (plain, 64, fortified, pre-2.33 __xstat
 * family bound to their compat versions), on one file and one symlink, and prints what each saw. The test
 * compares this output on a real copy and under velo run: every line must agree. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

extern int __open_2(const char *, int);
extern int __open64_2(const char *, int);
extern int __openat_2(int, const char *, int);
extern int __openat64_2(int, const char *, int);
extern int __xstat(int, const char *, struct stat *);
extern int __xstat64(int, const char *, struct stat64 *);
extern int __lxstat(int, const char *, struct stat *);
extern int __lxstat64(int, const char *, struct stat64 *);
extern int __fxstat(int, int, struct stat *);
extern int __fxstat64(int, int, struct stat64 *);
extern int __fxstatat(int, int, const char *, struct stat *, int);
extern int __fxstatat64(int, int, const char *, struct stat64 *, int);
__asm__(".symver __xstat,__xstat@GLIBC_2.2.5");
__asm__(".symver __xstat64,__xstat64@GLIBC_2.2.5");
__asm__(".symver __lxstat,__lxstat@GLIBC_2.2.5");
__asm__(".symver __lxstat64,__lxstat64@GLIBC_2.2.5");
__asm__(".symver __fxstat,__fxstat@GLIBC_2.2.5");
__asm__(".symver __fxstat64,__fxstat64@GLIBC_2.2.5");
__asm__(".symver __fxstatat,__fxstatat@GLIBC_2.4");
__asm__(".symver __fxstatat64,__fxstatat64@GLIBC_2.4");

static ino_t ref_ino;
static void show(const char *what, int r, const struct stat *st) {
  if (r < 0) {
    printf("%s: error %m\n", what);
    return;
  }
  printf("%s: mode %o size %lld blocks %lld nlink %lu same-ino %d\n", what, st->st_mode, (long long)st->st_size,
         (long long)st->st_blocks, (unsigned long)st->st_nlink, st->st_ino == ref_ino);
}
static void head(const char *what, int fd) {
  char b[17] = {0};
  if (fd < 0) {
    printf("%s: error %m\n", what);
    return;
  }
  ssize_t n = read(fd, b, 16);
  struct stat st;
  fstat(fd, &st);
  printf("%s: %zd '%s' fstat-same-ino %d\n", what, n, b, st.st_ino == ref_ino);
  close(fd);
}

int main(int argc, char **argv) {
  const char *f = argv[1], *l = argv[2], *dir = argv[3];
  (void)argc;
  struct stat st;
  struct stat64 st64;
  stat(f, &st);
  ref_ino = st.st_ino;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  const char *base = strrchr(f, '/') + 1;
  int flags = argc > 10 ? O_RDWR : O_RDONLY; /* not a constant: fortified callers use __open_2 */
  head("open", open(f, O_RDONLY));
  head("open64", open64(f, O_RDONLY));
  head("openat", openat(dfd, base, O_RDONLY));
  head("openat64", openat64(dfd, base, O_RDONLY));
  head("__open_2", __open_2(f, flags));
  head("__open64_2", __open64_2(f, flags));
  head("__openat_2", __openat_2(dfd, base, flags));
  head("__openat64_2", __openat64_2(dfd, base, flags));
  FILE *fp = fopen(f, "r");
  head("fopen", fp ? dup(fileno(fp)) : -1);
  if (fp) fclose(fp);
  fp = fopen64(f, "re");
  char b[17] = {0};
  printf("fopen64+fread: %zu '%s'\n", fp ? fread(b, 1, 16, fp) : 0, b);
  if (fp) fclose(fp);
  fp = freopen(f, "r", stdin);
  printf("freopen: %d\n", fp ? getc(fp) : -1);
  show("stat", stat(f, &st), &st);
  show("stat64", stat64(f, &st64), (struct stat *)&st64);
  show("lstat", lstat(f, &st), &st);
  show("lstat64", lstat64(f, &st64), (struct stat *)&st64);
  show("stat(link)", stat(l, &st), &st);
  int fd = open(f, O_RDONLY);
  show("fstat", fstat(fd, &st), &st);
  show("fstat64", fstat64(fd, &st64), (struct stat *)&st64);
  show("fstatat", fstatat(dfd, base, &st, 0), &st);
  show("fstatat64", fstatat64(dfd, base, &st64, AT_SYMLINK_NOFOLLOW), (struct stat *)&st64);
  show("fstatat(AT_EMPTY_PATH)", fstatat(fd, "", &st, AT_EMPTY_PATH), &st);
  show("__xstat", __xstat(1, f, &st), &st);
  show("__xstat64", __xstat64(1, f, &st64), (struct stat *)&st64);
  show("__lxstat", __lxstat(1, f, &st), &st);
  show("__lxstat64", __lxstat64(1, f, &st64), (struct stat *)&st64);
  show("__fxstat", __fxstat(1, fd, &st), &st);
  show("__fxstat64", __fxstat64(1, fd, &st64), (struct stat *)&st64);
  show("__fxstatat", __fxstatat(1, dfd, base, &st, 0), &st);
  show("__fxstatat64", __fxstatat64(1, dfd, base, &st64, 0), (struct stat *)&st64);
  struct statx sx;
  int r = statx(AT_FDCWD, f, 0, STATX_BASIC_STATS, &sx);
  printf("statx: %d size %llu blocks %llu nlink %u same-ino %d\n", r, (unsigned long long)sx.stx_size, (unsigned long long)sx.stx_blocks, sx.stx_nlink, sx.stx_ino == ref_ino);
  r = (int)syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx);
  printf("syscall(SYS_statx, fd): %d size %llu blocks %llu nlink %u same-ino %d\n", r, (unsigned long long)sx.stx_size, (unsigned long long)sx.stx_blocks, sx.stx_nlink, sx.stx_ino == ref_ino);
  r = (int)syscall(SYS_io_uring_setup, 4, calloc(1, 256));
  printf("io_uring_setup: %s\n", r < 0 ? "refused" : "allowed");
  close(fd);
  printf("access: %d faccessat: %d\n", access(f, R_OK), faccessat(dfd, base, R_OK, 0));
  char buf[4096];
  ssize_t n = readlink(l, buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  printf("readlink: %s\n", buf);
  n = readlinkat(AT_FDCWD, l, buf, sizeof buf - 1);
  printf("readlinkat: %zd\n", n);
  char *rp = realpath(l, NULL);
  printf("realpath ends with base: %d\n", rp && !strcmp(strrchr(rp, '/') + 1, base));
  free(rp);
  n = listxattr(f, buf, sizeof buf);
  int ours = 0;
  for (char *p = buf; n > 0 && p < buf + n; p += strlen(p) + 1) ours += !strncmp(p, "user.velo", 9);
  printf("listxattr velo names: %d getxattr: %zd\n", ours, getxattr(f, "user.velo", buf, sizeof buf));
  struct dirent **names;
  int cnt = scandir(dir, &names, NULL, alphasort);
  printf("scandir: %d\n", cnt);
  DIR *d = opendir(dir);
  int m = 0;
  while (d && readdir(d)) m++;
  if (d) closedir(d);
  printf("opendir/readdir: %d\n", m);

  /* children started with a fresh, minimal environment must still see the projection */
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "printf 'child: '; head -c 16 %s; echo", f);
  char *argv2[] = {"sh", "-c", cmd, NULL};
  char *envp[] = {"PATH=/usr/bin:/bin", NULL};
  fflush(stdout);
  pid_t pid;
  if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv2, envp) == 0) waitpid(pid, NULL, 0);
  if (posix_spawnp(&pid, "sh", NULL, NULL, argv2, envp) == 0) waitpid(pid, NULL, 0);
  if ((pid = fork()) == 0) {
    execve("/bin/sh", argv2, envp);
    _exit(127);
  }
  waitpid(pid, NULL, 0);
  if ((pid = fork()) == 0) {
    unsetenv("LD_PRELOAD");
    execlp("sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  waitpid(pid, NULL, 0);
  unsetenv("LD_PRELOAD");
  if (system(cmd) != 0) printf("system failed\n");
  fflush(stdout);
  FILE *p = popen(cmd, "r");
  char line[256] = {0};
  if (p && fgets(line, sizeof line, p)) printf("popen %s", line);
  if (p) pclose(p);
  return 0;
}
