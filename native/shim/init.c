/* Start-up: resolve the real libc functions and read the velo environment. No manifest parse, no I/O
 * beyond dladdr: a process that never touches a placeholder pays nothing else. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

struct velo_real R;
struct velo_shim S;
extern char **environ;

#define LOAD(f) R.f = (__typeof__(R.f))dlsym(RTLD_NEXT, #f)

void velo_real_init(void) {
  LOAD(open); LOAD(open64); LOAD(openat); LOAD(openat64); LOAD(creat); LOAD(creat64);
  LOAD(__open_2); LOAD(__open64_2); LOAD(__openat_2); LOAD(__openat64_2);
  LOAD(fopen); LOAD(fopen64); LOAD(freopen); LOAD(freopen64);
  LOAD(fstatat); LOAD(statx); LOAD(syscall);
  LOAD(close); LOAD(dup); LOAD(dup2); LOAD(dup3); LOAD(fcntl);
  LOAD(rename); LOAD(renameat); LOAD(readlink); LOAD(readlinkat);
  LOAD(getxattr); LOAD(lgetxattr); LOAD(fgetxattr); LOAD(listxattr); LOAD(llistxattr); LOAD(flistxattr);
  LOAD(fsetxattr); LOAD(fremovexattr); LOAD(removexattr);
  LOAD(truncate); LOAD(fchmod); LOAD(fchown); LOAD(futimens); LOAD(chmod); LOAD(lchown); LOAD(utimensat);
  LOAD(execve); LOAD(fexecve); LOAD(posix_spawn); LOAD(posix_spawnp); LOAD(dlopen); LOAD(system); LOAD(popen);
  LOAD(opendir); LOAD(fdopendir); LOAD(readdir); LOAD(closedir); LOAD(rewinddir); LOAD(scandir); LOAD(scandir64); LOAD(chdir); LOAD(fchdir); LOAD(getcwd); LOAD(realpath);
  LOAD(faccessat); LOAD(mkdirat); LOAD(unlinkat); LOAD(linkat); LOAD(symlinkat); LOAD(fchmodat); LOAD(fchownat);
  LOAD(mknodat);
  __atomic_store_n(&R.ready, 1, __ATOMIC_RELEASE);
}

void velo_warn(const char *fmt, ...) {
  if (S.quiet) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w = write(2, "velo: ", 6);
  w = write(2, buf, (size_t)n);
  (void)w;
}

static void set_path(char *dst, size_t *len, const char *src) {
  size_t n = strlen(src);
  while (n > 1 && src[n - 1] == '/') n--;
  if (n >= PATH_MAX) return;
  memcpy(dst, src, n);
  dst[n] = 0;
  *len = n;
}

__attribute__((constructor)) void velo_shim_init(void) {
  static int done;
  if (__atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL)) return;
  if (!R.ready) velo_real_init();
  Dl_info info;
  if (dladdr((void *)&velo_shim_init, &info) && info.dli_fname) {
    char *rp = realpath(info.dli_fname, NULL);
    snprintf(S.self, sizeof S.self, "%s", rp ? rp : info.dli_fname);
    free(rp);
  }
  S.quiet = getenv("VELO_SHIM_QUIET") != NULL;
  /* Everything named VELO_SHIM_* is the shim's configuration: carried into children even through a
   * fresh envp. Copied now, so a program that unsets them still passes them on. */
  int n = 0;
  for (char **e = environ; e && *e; e++)
    if (!strncmp(*e, "VELO_SHIM_", 10)) n++;
  S.keep_env = calloc((size_t)n + 1, sizeof(char *));
  for (char **e = environ; S.keep_env && e && *e; e++)
    if (!strncmp(*e, "VELO_SHIM_", 10)) S.keep_env[S.n_keep++] = strdup(*e);
  const char *cas = getenv("VELO_SHIM_CAS");
  if (cas) snprintf(velo_cas, sizeof velo_cas, "%s", cas);
  const char *root = getenv("VELO_SHIM_PHANTOM_ROOT"), *skel = getenv("VELO_SHIM_PHANTOM_SKEL");
  if (root && skel && root[0] == '/' && skel[0] == '/') {
    set_path(S.root, &S.root_len, root);
    set_path(S.skel, &S.skel_len, skel);
    S.phantom = S.root_len > 1 && S.skel_len > 1;
    if (S.phantom) {
      velo_cwd_changed();
      velo_phantom_dir_init();
    }
  }
}
