/* The libc functions the shim wraps, as the shim itself must call them (the next definition after ours,
 * found with dlsym(RTLD_NEXT)); velo-project fills the same table with plain libc. Code shared by both
 * (ph.c) calls only through R, never the wrapped names, so the shim never recurses into itself. */
#ifndef VELO_REAL_H
#define VELO_REAL_H
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

struct velo_real {
  int ready;
  int (*open)(const char *, int, ...);
  int (*open64)(const char *, int, ...);
  int (*openat)(int, const char *, int, ...);
  int (*openat64)(int, const char *, int, ...);
  int (*creat)(const char *, mode_t);
  int (*creat64)(const char *, mode_t);
  int (*__open_2)(const char *, int);
  int (*__open64_2)(const char *, int);
  int (*__openat_2)(int, const char *, int);
  int (*__openat64_2)(int, const char *, int);
  FILE *(*fopen)(const char *, const char *);
  FILE *(*fopen64)(const char *, const char *);
  FILE *(*freopen)(const char *, const char *, FILE *);
  FILE *(*freopen64)(const char *, const char *, FILE *);
  int (*fstatat)(int, const char *, struct stat *, int);
  int (*statx)(int, const char *, int, unsigned, struct statx *);
  long (*syscall)(long, ...);
  int (*close)(int);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  int (*fcntl)(int, int, ...);
  int (*rename)(const char *, const char *);
  int (*renameat)(int, const char *, int, const char *);
  ssize_t (*readlink)(const char *, char *, size_t);
  ssize_t (*readlinkat)(int, const char *, char *, size_t);
  ssize_t (*getxattr)(const char *, const char *, void *, size_t);
  ssize_t (*lgetxattr)(const char *, const char *, void *, size_t);
  ssize_t (*fgetxattr)(int, const char *, void *, size_t);
  ssize_t (*listxattr)(const char *, char *, size_t);
  ssize_t (*llistxattr)(const char *, char *, size_t);
  ssize_t (*flistxattr)(int, char *, size_t);
  int (*fsetxattr)(int, const char *, const void *, size_t, int);
  int (*fremovexattr)(int, const char *);
  int (*removexattr)(const char *, const char *);
  int (*truncate)(const char *, off_t);
  int (*fchmod)(int, mode_t);
  int (*fchown)(int, uid_t, gid_t);
  int (*futimens)(int, const struct timespec[2]);
  int (*chmod)(const char *, mode_t);
  int (*lchown)(const char *, uid_t, gid_t);
  int (*utimensat)(int, const char *, const struct timespec[2], int);
  int (*execve)(const char *, char *const[], char *const[]);
  int (*fexecve)(int, char *const[], char *const[]);
  int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *, char *const[], char *const[]);
  int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *, char *const[], char *const[]);
  void *(*dlopen)(const char *, int);
  int (*system)(const char *);
  FILE *(*popen)(const char *, const char *);
  /* phantom mode only */
  DIR *(*opendir)(const char *);
  DIR *(*fdopendir)(int);
  struct dirent *(*readdir)(DIR *);
  int (*closedir)(DIR *);
  void (*rewinddir)(DIR *);
  int (*scandir)(const char *, struct dirent ***, int (*)(const struct dirent *), int (*)(const struct dirent **, const struct dirent **));
  int (*scandir64)(const char *, struct dirent64 ***, int (*)(const struct dirent64 *), int (*)(const struct dirent64 **, const struct dirent64 **));
  int (*chdir)(const char *);
  int (*fchdir)(int);
  char *(*getcwd)(char *, size_t);
  char *(*realpath)(const char *, char *);
  int (*faccessat)(int, const char *, int, int);
  int (*mkdirat)(int, const char *, mode_t);
  int (*unlinkat)(int, const char *, int);
  int (*linkat)(int, const char *, int, const char *, int);
  int (*symlinkat)(const char *, int, const char *);
  int (*fchmodat)(int, const char *, mode_t, int);
  int (*fchownat)(int, const char *, uid_t, gid_t, int);
  int (*mknodat)(int, const char *, mode_t, dev_t);
};

extern struct velo_real R;
void velo_real_init(void);
#define REAL_READY() do { if (__builtin_expect(!R.ready, 0)) velo_real_init(); } while (0)

#endif
