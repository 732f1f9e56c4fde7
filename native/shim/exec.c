/* exec*, posix_spawn, system/popen, dlopen.
 * - The child must get the shim again even when the program builds a fresh envp or cleared LD_PRELOAD:
 *   every exec path goes through env_fix, which puts this library first in LD_PRELOAD and restores the
 *   VELO_SHIM_* variables captured at start-up.
 * - The kernel (execve) and ld.so (dlopen, DT_NEEDED) read files without the shim, so a placeholder about
 *   to be executed or loaded is first made real (a private copy, like a write).
 * - Static binaries and setuid programs (secure mode drops LD_PRELOAD) cannot see the projection: say so. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "elfdeps.h"
#include "shim.h"

extern char **environ;

/* ---- environment ---- */
struct envbuf {
  char **envp;
  size_t len;
};
static void envbuf_free(struct envbuf *b) {
  if (b->envp) munmap(b->envp, b->len);
}

/* A fixed copy of envp in one mmap'ed block (no malloc: exec may run in a vfork child). */
static char *const *env_fix(char *const envp[], struct envbuf *out) {
  out->envp = NULL;
  if (!S.self[0]) return envp;
  size_t n = 0, bytes = 0;
  const char *old_pre = NULL;
  for (char *const *e = envp; e && *e; e++, n++) {
    bytes += strlen(*e) + 1;
    if (!strncmp(*e, "LD_PRELOAD=", 11)) old_pre = *e + 11;
  }
  for (int i = 0; i < S.n_keep; i++) bytes += strlen(S.keep_env[i]) + 1;
  size_t sl = strlen(S.self);
  bytes += sl + 16 + (old_pre ? strlen(old_pre) + 1 : 0);
  size_t slots = n + (size_t)S.n_keep + 2;
  size_t total = slots * sizeof(char *) + bytes;
  char **arr = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (arr == MAP_FAILED) return envp;
  char *s = (char *)(arr + slots);
  size_t k = 0;
  /* LD_PRELOAD: ours first, then whatever the program wanted (without a second copy of ours) */
  arr[k++] = s;
  s += sprintf(s, "LD_PRELOAD=%s", S.self);
  if (old_pre) {
    const char *p = old_pre;
    while (*p) {
      size_t l = strcspn(p, ": ");
      if (l && !(l == sl && !memcmp(p, S.self, sl))) {
        *s++ = ':';
        memcpy(s, p, l);
        s += l;
      }
      p += l;
      if (*p) p++;
    }
  }
  *s++ = 0;
  for (char *const *e = envp; e && *e; e++) {
    if (!strncmp(*e, "LD_PRELOAD=", 11)) continue;
    arr[k++] = *e;
  }
  for (int i = 0; i < S.n_keep; i++) {
    const char *kv = S.keep_env[i];
    size_t nl = strcspn(kv, "=") + 1;
    int have = 0;
    for (char *const *e = envp; e && *e && !have; e++) have = !strncmp(*e, kv, nl);
    if (!have) arr[k++] = (char *)kv;
  }
  arr[k] = NULL;
  out->envp = arr;
  out->len = total;
  return arr;
}

/* ---- what is about to run ---- */
/* velo's own programs, in the directory the shim was loaded from (the native front-end, velo-runtime): not the
 * user's, they need no projection, and the front-end is linked statically on purpose */
static int velo_own_program(const char *path) {
  const char *slash = strrchr(S.self, '/');
  size_t dl = slash ? (size_t)(slash - S.self) : 0;
  char *rp = dl ? realpath(path, NULL) : NULL;
  int own = rp && !strncmp(rp, S.self, dl) && rp[dl] == '/' && !strchr(rp + dl + 1, '/');
  free(rp);
  return own;
}

static void check_binary(const char *path) {
  if (velo_own_program(path)) return;
  int fd = R.openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  Elf64_Ehdr eh;
  if (R.fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && (st.st_mode & (S_ISUID | S_ISGID)) &&
      ((st.st_mode & S_ISUID && st.st_uid != getuid()) || (st.st_mode & S_ISGID && st.st_gid != getgid())))
    velo_warn("warning: %s is setuid/setgid: the kernel drops LD_PRELOAD for it, so it does not see the projection", path);
  else if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
           eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 256) {
    Elf64_Phdr ph[256];
    ssize_t want = (ssize_t)(eh.e_phnum * sizeof(Elf64_Phdr));
    if (pread(fd, ph, (size_t)want, (off_t)eh.e_phoff) == want) {
      int interp = 0;
      for (int i = 0; i < eh.e_phnum; i++) interp |= ph[i].p_type == PT_INTERP;
      if (!interp && eh.e_type == ET_EXEC)
        velo_warn("warning: %s is statically linked: it cannot load the shim and does not see projected files", path);
    }
  }
  R.close(fd);
}

static const char *map_dir(const char *dir, char *buf, size_t len) { return S.phantom ? velo_map(AT_FDCWD, dir, buf, len) : dir; }

static const char *env_get(char *const envp[], const char *name) {
  size_t n = strlen(name);
  for (char *const *e = envp; e && *e; e++)
    if (!strncmp(*e, name, n) && (*e)[n] == '=') return *e + n + 1;
  return NULL;
}

void velo_prepare_exec(const char *path, char *const envp[]) {
  if (!path) return;
  struct stat st;
  int e = errno;
  if (R.fstatat(AT_FDCWD, path, &st, 0) == 0 && velo_ph_maybe(&st)) {
    struct velo_ph ph;
    char real[PATH_MAX];
    if (velo_ph_get_path(path, 1, &ph) && R.realpath && R.realpath(path, real)) velo_ph_materialize(real);
  }
  /* and the libraries ld.so will open for it by itself (DT_NEEDED), which the shim never sees */
  velo_prepare_deps(path, map_dir, env_get(envp, "LD_LIBRARY_PATH"));
  errno = e;
}

/* PATH search as execvp does it, so the file can be prepared; returns buf or NULL (let libc decide). */
static const char *search_path(const char *file, char *buf, size_t len) {
  if (!file || !*file || strchr(file, '/')) return file;
  const char *path = getenv("PATH");
  if (!path) path = "/bin:/usr/bin";
  for (const char *p = path;;) {
    size_t l = strcspn(p, ":");
    if (snprintf(buf, len, "%.*s%s%s", (int)l, p, l ? "/" : "", file) < (int)len) {
      struct stat st;
      if (R.fstatat(AT_FDCWD, buf, &st, 0) == 0 && S_ISREG(st.st_mode) && R.faccessat(AT_FDCWD, buf, X_OK, AT_EACCESS) == 0) return buf;
    }
    if (!p[l]) return NULL;
    p += l + 1;
  }
}

static int exec_common(const char *path, char *const argv[], char *const envp[], int search) {
  REAL_READY();
  char mb[PATH_MAX], sb[PATH_MAX];
  const char *target = search ? search_path(path, sb, sizeof sb) : path;
  if (!target) {
    errno = ENOENT;
    return -1;
  }
  target = MAP(AT_FDCWD, target, mb);
  velo_prepare_exec(target, envp);
  check_binary(target);
  struct envbuf eb;
  char *const *env = env_fix(envp, &eb);
  int r = R.execve(target, argv, env);
  int e = errno;
  if (r < 0 && e == ENOEXEC && search) {
    /* execvp's rule: a file without a magic number is run by /bin/sh */
    size_t n = 0;
    while (argv[n]) n++;
    char **nargv = alloca((n + 2) * sizeof(char *));
    nargv[0] = (char *)"/bin/sh";
    nargv[1] = (char *)target;
    for (size_t i = 1; i <= n; i++) nargv[i + 1] = argv[i];
    R.execve("/bin/sh", nargv, env);
  }
  envbuf_free(&eb);
  errno = e;
  return -1;
}

VELO_EXPORT int execve(const char *p, char *const argv[], char *const envp[]) { return exec_common(p, argv, envp, 0); }
VELO_EXPORT int execv(const char *p, char *const argv[]) { return exec_common(p, argv, environ, 0); }
VELO_EXPORT int execvp(const char *p, char *const argv[]) { return exec_common(p, argv, environ, 1); }
VELO_EXPORT int execvpe(const char *p, char *const argv[], char *const envp[]) { return exec_common(p, argv, envp, 1); }

#define COLLECT_ARGS(first, argv, ap, extra)                     \
  size_t n_ = 1;                                                 \
  va_start(ap, first);                                           \
  while (va_arg(ap, char *)) n_++;                               \
  va_end(ap);                                                    \
  char **argv = alloca((n_ + 1) * sizeof(char *));               \
  va_start(ap, first);                                           \
  argv[0] = (char *)first;                                       \
  for (size_t i_ = 1; i_ <= n_; i_++) argv[i_] = va_arg(ap, char *); \
  extra;                                                         \
  va_end(ap)

VELO_EXPORT int execl(const char *p, const char *arg, ...) {
  va_list ap;
  COLLECT_ARGS(arg, argv, ap, (void)0);
  return exec_common(p, argv, environ, 0);
}
VELO_EXPORT int execlp(const char *p, const char *arg, ...) {
  va_list ap;
  COLLECT_ARGS(arg, argv, ap, (void)0);
  return exec_common(p, argv, environ, 1);
}
VELO_EXPORT int execle(const char *p, const char *arg, ...) {
  va_list ap;
  char **envp;
  COLLECT_ARGS(arg, argv, ap, envp = va_arg(ap, char **));
  return exec_common(p, argv, envp, 0);
}
VELO_EXPORT int fexecve(int fd, char *const argv[], char *const envp[]) {
  REAL_READY();
  struct envbuf eb;
  char *const *env = env_fix(envp, &eb);
  int r = R.fexecve(fd, argv, env);
  int e = errno;
  envbuf_free(&eb);
  errno = e;
  return r;
}

static int spawn_common(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
                        char *const argv[], char *const envp[], int search) {
  REAL_READY();
  char mb[PATH_MAX], sb[PATH_MAX];
  const char *target = search ? search_path(path, sb, sizeof sb) : path;
  if (!target) return ENOENT;
  target = MAP(AT_FDCWD, target, mb);
  velo_prepare_exec(target, envp ? envp : environ);
  check_binary(target);
  struct envbuf eb;
  char *const *env = env_fix(envp ? envp : environ, &eb);
  int r = (search && target == path ? R.posix_spawnp : R.posix_spawn)(pid, target, fa, at, argv, env);
  envbuf_free(&eb);
  return r;
}
VELO_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
                            char *const argv[], char *const envp[]) {
  return spawn_common(pid, path, fa, at, argv, envp, 0);
}
VELO_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
                             char *const argv[], char *const envp[]) {
  return spawn_common(pid, file, fa, at, argv, envp, 1);
}

/* system() and popen() spawn /bin/sh with environ inside libc: put our variables back into environ first. */
static void restore_environ(void) {
  if (!S.self[0]) return;
  const char *pre = getenv("LD_PRELOAD");
  if (!pre || !strstr(pre, S.self)) {
    char buf[PATH_MAX * 2];
    snprintf(buf, sizeof buf, "%s%s%s", S.self, pre && *pre ? ":" : "", pre ? pre : "");
    setenv("LD_PRELOAD", buf, 1);
  }
  for (int i = 0; i < S.n_keep; i++)
    if (!getenv(strndupa(S.keep_env[i], strcspn(S.keep_env[i], "=")))) putenv(S.keep_env[i]);
}
VELO_EXPORT int system(const char *cmd) {
  REAL_READY();
  restore_environ();
  return R.system(cmd);
}
VELO_EXPORT FILE *popen(const char *cmd, const char *mode) {
  REAL_READY();
  restore_environ();
  return R.popen(cmd, mode);
}

VELO_EXPORT void *dlopen(const char *file, int mode) {
  REAL_READY();
  char mb[PATH_MAX];
  if (file && strchr(file, '/')) {
    file = MAP(AT_FDCWD, file, mb);
    velo_prepare_exec(file, environ); /* ld.so read LD_LIBRARY_PATH at start-up; the environment is the best guess */
  }
  return R.dlopen(file, mode);
}
