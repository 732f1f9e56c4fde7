/* A sandbox's life through velo-runtime (native/runtime): the tenant dir is the OCI bundle (config.json from
 * oci.c, root/ the overlay's mount point), the container id is the sandbox name, and the runtime's state lives in
 * <home>/runtime. Both front doors come here: the native fast paths directly, Node through `velo __sandbox`. */
#include "rtcall.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/sysutil.h"
#include "oci.h"

static void bin_path(const struct front_ctx *ctx, const char *name, char *buf, size_t len) {
  snprintf(buf, len, "%s/native/build/%s", ctx->pkgroot, name);
}

/* velo-runtime --root HOME/runtime ARGS...: stdin and stdout /dev/null, stderr captured (its message, without the
 * "velo-runtime: " prefix). Returns the wait status, or -1. */
static int rt(const struct front_ctx *ctx, const char *home, const char *const *args, char *err, size_t errlen) {
  char bin[4200], root[4200];
  bin_path(ctx, "velo-runtime", bin, sizeof bin);
  snprintf(root, sizeof root, "%s/runtime", home);
  const char *argv[16] = {"velo-runtime", "--root", root};
  int n = 3;
  for (; *args && n < 15; args++) argv[n++] = *args;
  argv[n] = NULL;
  int pe[2];
  if (pipe2(pe, O_CLOEXEC) < 0) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return close(pe[0]), close(pe[1]), -1;
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(pe[1], 2) < 0) _exit(127);
    execv(bin, (char *const *)argv);
    dprintf(2, "velo-runtime: cannot run %s: %s", bin, strerror(errno));
    _exit(127);
  }
  close(pe[1]);
  /* wait for the runtime first: `create` hands its stdio on to the container, so the pipe would never see EOF;
   * what it wrote is in the pipe by then */
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return close(pe[0]), -1;
  fcntl(pe[0], F_SETFL, O_NONBLOCK);
  size_t got = 0;
  ssize_t r;
  while (got < errlen - 1 && (r = read(pe[0], err + got, errlen - 1 - got)) > 0) got += (size_t)r;
  close(pe[0]);
  while (got && (err[got - 1] == '\n' || err[got - 1] == ' ')) got--;
  err[got] = 0;
  /* the last line is the error; "velo-runtime: " is ours to drop */
  char *last = strrchr(err, '\n');
  const char *m = last ? last + 1 : err;
  if (!strncmp(m, "velo-runtime: ", 14)) m += 14;
  memmove(err, m, strlen(m) + 1);
  return st;
}

static int rt_ok(int st) { return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0; }

int sb_rt_delete(const struct front_ctx *ctx, const char *home, const char *name, char *err, size_t errlen) {
  const char *args[] = {"delete", "--force", name, NULL};
  return rt_ok(rt(ctx, home, args, err, errlen)) ? 0 : -1;
}

int sb_boot(const struct front_ctx *ctx, const char *home, struct tstate *s, char *err, size_t errlen) {
  char dir[4200], p[4400];
  snprintf(dir, sizeof dir, "%s/tenants/%s", home, s->name);
  /* a container left by a sandbox whose init died (kill -9, reboot): the runtime forgets it before a new one */
  snprintf(p, sizeof p, "%s/runtime/%s", home, s->name);
  struct stat st;
  if (lstat(p, &st) == 0 && sb_rt_delete(ctx, home, s->name, err, errlen) < 0) return -1;
  static const char *const subs[] = {"upper", "work", "root"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
    if (mkdir(p, 0755) < 0 && errno != EEXIST) return snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno)), -1;
  }
  char init[4200];
  bin_path(ctx, "velo-init", init, sizeof init);
  json_object *cfg = oci_sandbox_config(home, init, s);
  if (!cfg) return snprintf(err, errlen, "out of memory"), -1;
  const char *txt = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int w = dfd < 0 ? -1 : 0;
  if (!w) {
    unlinkat(dfd, "config.json.tmp", 0);
    int fd = openat(dfd, "config.json.tmp", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    w = fd < 0 || write_all(fd, txt, strlen(txt)) < 0 ? -1 : 0;
    if (fd >= 0) close(fd);
    if (!w) w = renameat(dfd, "config.json.tmp", dfd, "config.json");
  }
  int en = errno;
  if (dfd >= 0) close(dfd);
  json_object_put(cfg);
  if (w < 0) return snprintf(err, errlen, "cannot write %s/config.json: %s", dir, strerror(en)), -1;
  snprintf(p, sizeof p, "%s/init.pid", dir);
  unlink(p);
  /* create + start in one call (run --detach): the init runs velo-init as soon as it is set up */
  const char *run[] = {"run", "--detach", "--bundle", dir, "--pid-file", p, s->name, NULL};
  if (!rt_ok(rt(ctx, home, run, err, errlen))) {
    char e2[256];
    sb_rt_delete(ctx, home, s->name, e2, sizeof e2);
    return -1;
  }
  char num[32] = "";
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, num, sizeof num - 1) : -1;
  if (fd >= 0) close(fd);
  num[n > 0 ? n : 0] = 0;
  long pid = strtol(num, NULL, 10);
  unsigned long long start_time;
  if (pid <= 0 || proc_starttime((pid_t)pid, &start_time, NULL) < 0) return snprintf(err, errlen, "the sandbox's init exited right after start"), -1;
  s->has_pid = true;
  s->pid = pid;
  char sbuf[32];
  snprintf(sbuf, sizeof sbuf, "%llu", start_time);
  free(s->pid_start);
  s->pid_start = strdup(sbuf);
  return 0;
}

int sb_signal(const struct front_ctx *ctx, const char *home, const struct tstate *s, int sig, int timeout_ms, char *err, size_t errlen) {
  /* the pidfd pins the init we mean (its start time checked): the wait below cannot watch a reused pid */
  int pfd = (int)syscall(SYS_pidfd_open, (pid_t)s->pid, 0);
  unsigned long long start;
  char state;
  if (pfd < 0 || proc_starttime((pid_t)s->pid, &start, &state) < 0 || strtoull(s->pid_start, NULL, 10) != start || state == 'Z') {
    if (pfd >= 0) close(pfd);
    return 3;
  }
  char num[8];
  snprintf(num, sizeof num, "%d", sig);
  const char *args[] = {"kill", s->name, num, NULL};
  int st = rt(ctx, home, args, err, errlen);
  if (!rt_ok(st)) {
    struct pollfd pf = {.fd = pfd, .events = POLLIN};
    int gone = poll(&pf, 1, 0) > 0;
    close(pfd);
    return gone ? 3 : -1;
  }
  if (timeout_ms <= 0) return close(pfd), 0;
  struct pollfd pf = {.fd = pfd, .events = POLLIN};
  int r;
  do r = poll(&pf, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  close(pfd);
  return r > 0 ? 0 : 2;
}

int sb_exec_fd(const struct tstate *s, const struct oci_exec *x) {
  json_object *p = oci_sandbox_process(s, x);
  const char *txt = json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  /* the process JSON in memory: handed to velo-runtime as /proc/self/fd/N, nothing to clean up */
  int fd = memfd_create("velo-process", 0);
  if (fd >= 0 && (write_all(fd, txt, strlen(txt)) < 0 || lseek(fd, 0, SEEK_SET) < 0)) close(fd), fd = -1;
  json_object_put(p);
  return fd;
}

char **sb_exec_argv(const struct front_ctx *ctx, const char *home, const char *name, int process_fd) {
  char **v = calloc(8, sizeof *v);
  if (!v) return NULL;
  char bin[4200];
  bin_path(ctx, "velo-runtime", bin, sizeof bin);
  v[0] = strdup(bin);
  v[1] = strdup("--root");
  if (asprintf(&v[2], "%s/runtime", home) < 0 || asprintf(&v[5], "/proc/self/fd/%d", process_fd) < 0) return NULL;
  v[3] = strdup("exec");
  v[4] = strdup("--process");
  v[6] = strdup(name);
  return v;
}
