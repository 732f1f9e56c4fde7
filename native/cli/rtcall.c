/* A sandbox's life through velo-runtime's library (native/runtime, linked in: the same code as the velo-runtime
 * verbs, without starting it as a program on every call): the tenant dir is the OCI bundle (config.json from
 * oci.c, root/ the overlay's mount point), the container id is the sandbox name, and the runtime's state lives in
 * <home>/runtime, so `velo-runtime --root <home>/runtime state NAME` sees every sandbox. Both front doors come
 * here: the native fast paths directly, Node through `velo __sandbox`. */
#include "rtcall.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/sysutil.h"
#include "../common/ttyrelay.h"
#include "../runtime/rt.h"
#include "disk.h"
#include "oci.h"
#include "userns.h"

static void bin_path(const struct front_ctx *ctx, const char *name, char *buf, size_t len) {
  snprintf(buf, len, "%s/native/build/%s", ctx->pkgroot, name);
}

/* the runtime library keeps its state under G.root, as `velo-runtime --root HOME/runtime` would */
static void rt_root(const char *home) {
  static char root[4200];
  snprintf(root, sizeof root, "%s/runtime", home);
  G.root = root;
}

static int fail_with(const struct velo_err *e, char *err, size_t errlen) {
  snprintf(err, errlen, "%s", e->msg[0] ? e->msg : "velo-runtime failed");
  return -1;
}

/* A sandbox init the runtime has no record of (a tenant started by velo-helper before sandboxes were velo-runtime
 * containers, or a runtime state dir lost while its init ran): state.json still names a live init. It is killed
 * (its pid namespace with it) and its cgroups are emptied and removed, as delete would have. */
static int reap_unrecorded(const char *home, const char *name, char *err, size_t errlen) {
  struct tstate s;
  if (state_read(home, name, &s) != STATE_OK) return 0;
  int rc = 0;
  struct velo_err e = {0};
  if (state_running(&s)) {
    /* the runtime's own signal and wait, on the init state.json names (its start time checked through a pidfd) */
    struct container init = {.id = (char *)name, .pid = (pid_t)s.pid, .pid_start = strtoull(s.pid_start, NULL, 10)};
    if (container_signal(&init, SIGKILL, &e) == 0) container_wait_exit(&init, 2000);
  }
  char path[300];
  oci_sandbox_cgroups_path(name, path, sizeof path);
  json_object *lin = json_object_new_object();
  json_object_object_add(lin, "cgroupsPath", json_object_new_string(path));
  struct oci_cgroup cg;
  if (oci_cgroup_plan(lin, name, false, &cg, &e) == 0) {
    if (oci_cgroup_kill_all(&cg, SIGKILL, 5000, &e) < 0 || oci_cgroup_destroy(&cg, &e) < 0) rc = fail_with(&e, err, errlen);
    oci_cgroup_free(&cg);
  }
  json_object_put(lin);
  return rc;
}

int sb_rt_delete(const struct front_ctx *ctx, const char *home, const char *name, char *err, size_t errlen) {
  (void)ctx;
  rt_root(home);
  char rec[4400];
  snprintf(rec, sizeof rec, "%s/%s", G.root, name);
  struct stat st;
  if (lstat(rec, &st) < 0 && errno == ENOENT) return reap_unrecorded(home, name, err, errlen);
  struct velo_err e = {0};
  return container_remove(name, true, &e) < 0 ? fail_with(&e, err, errlen) : 0;
}

/* A tenant with its own user namespace: its range (userns.c), and what its root (an unprivileged host uid) must
 * reach: the tenant dir and its upper, work and root dirs become its own (the dir 0700: no other host user gets
 * in), and the store and tenants dirs searchable (0711: no listing) so it can get there. */
static int tenant_userns(const char *home, const char *name, const char *dir, unsigned long ids[2], char *err, size_t errlen) {
  if (userns_range(home, name, &ids[0], &ids[1], err, errlen) < 0) return -1;
  char p[4400];
  const char *search[] = {home, NULL};
  snprintf(p, sizeof p, "%s/tenants", home);
  search[1] = p;
  for (int i = 0; i < 2; i++) {
    struct stat st;
    if (stat(search[i], &st) < 0 || ((st.st_mode & 0011) != 0011 && chmod(search[i], (st.st_mode & 07777) | 0011) < 0))
      return snprintf(err, errlen, "cannot make %s searchable for the tenant's user namespace: %s", search[i], strerror(errno)), -1;
  }
  static const char *const subs[] = {"", "/upper", "/work", "/root"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", dir, subs[i]);
    if (lchown(p, (uid_t)ids[0], (gid_t)ids[1]) < 0 || (i == 0 && chmod(p, 0700) < 0))
      return snprintf(err, errlen, "cannot give %s to the tenant's user namespace: %s", p, strerror(errno)), -1;
  }
  return 0;
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
  unsigned long ids[2];
  if (s->userns && tenant_userns(home, s->name, dir, ids, err, errlen) < 0) return -1;
  double v;
  if (state_limit(s, "disk", &v) && disk_quota_set(dir, v, err, errlen) < 0) return -1;
  unsigned io_dev[2];
  bool io = state_limit(s, "ioReadBps", &v) || state_limit(s, "ioWriteBps", &v);
  if (io && disk_block_device(dir, &io_dev[0], &io_dev[1], err, errlen) < 0) return -1;
  char init[4200];
  bin_path(ctx, "velo-init", init, sizeof init);
  json_object *cfg = oci_sandbox_config(home, init, s, s->userns ? ids : NULL, io ? io_dev : NULL);
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
  /* create + start in this process (the runtime library): the init runs velo-init as soon as it is set up, a
   * child of ours until we exit; its stdio is /dev/null, not ours */
  rt_root(home);
  struct create_opts o = {.id = s->name, .bundle = dir, .null_stdio = true};
  struct velo_err e = {0};
  pid_t pid = -1;
  struct container c = {0};
  if (container_create(&o, &pid, &e) < 0 || container_load(s->name, &c, &e) != 0 || container_start(&c, &e) < 0) {
    container_free(&c);
    fail_with(&e, err, errlen);
    char e2[256];
    sb_rt_delete(ctx, home, s->name, e2, sizeof e2);
    return -1;
  }
  container_free(&c);
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
  (void)ctx;
  /* the pidfd pins the init we mean (its start time checked): the wait below cannot watch a reused pid */
  int pfd = (int)syscall(SYS_pidfd_open, (pid_t)s->pid, 0);
  unsigned long long start;
  char state;
  if (pfd < 0 || proc_starttime((pid_t)s->pid, &start, &state) < 0 || strtoull(s->pid_start, NULL, 10) != start || state == 'Z') {
    if (pfd >= 0) close(pfd);
    return 3;
  }
  rt_root(home);
  struct velo_err e = {0};
  int r = container_kill(s->name, sig, false, &e);
  if (r != 0) {
    fail_with(&e, err, errlen);
    struct pollfd pf = {.fd = pfd, .events = POLLIN};
    int gone = poll(&pf, 1, 0) > 0;
    close(pfd);
    return gone ? 3 : -1;
  }
  if (timeout_ms <= 0) return close(pfd), 0;
  struct pollfd pf = {.fd = pfd, .events = POLLIN};
  do r = poll(&pf, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  close(pfd);
  return r > 0 ? 0 : 2;
}

int sb_exec_wait(const char *home, const struct tstate *s, const struct oci_exec *x) {
  /* joining a sandbox's cgroups and namespaces needs root: say so, rather than how the first step failed */
  if (geteuid() != 0) {
    char msg[300];
    snprintf(msg, sizeof msg, "cannot exec in sandbox %s: permission denied", s->name);
    return front_error(false, "PERMISSION_DENIED", msg, "sandboxes need root (namespaces, mounts, cgroups)");
  }
  rt_root(home);
  struct velo_err e = {0};
  struct container c;
  if (container_load(s->name, &c, &e) != 0) {
    container_free(&c);
    fprintf(stderr, "velo: %s\n", e.msg);
    return 1;
  }
  json_object *p = oci_sandbox_process(s, x);
  int relay_sock = -1, code = 1;
  pid_t child;
  struct exec_opts xo = {.relay_sock = &relay_sock};
  int r = p ? container_exec(&c, p, &xo, &child, &code, &e) : velo_fail(&e, ENOMEM, "the exec's process");
  json_object_put(p);
  container_free(&c);
  if (r < 0) {
    fprintf(stderr, "velo: %s\n", e.msg);
    return code;
  }
  /* we are the process's parent, as velo-runtime exec was: signals sent to us are passed on, its code is ours */
  if (relay_sock >= 0) {
    int master = console_recv(relay_sock, &e);
    close(relay_sock);
    if (master < 0) {
      kill(child, SIGKILL);
      fprintf(stderr, "velo: %s\n", e.msg);
      return 1;
    }
    return tty_relay(master, child, PROC_FORWARD, PROC_N_FORWARD);
  }
  sigset_t set;
  proc_forward_set(&set);
  return proc_wait_forwarding(child, &set);
}

const char *sb_err_split(char *err, const char **sug) {
  static const char P[] = "UNSUPPORTED: ";
  if (strncmp(err, P, sizeof P - 1)) return NULL;
  memmove(err, err + sizeof P - 1, strlen(err + sizeof P - 1) + 1);
  char *nl = strstr(err, "\nsuggestion: ");
  *sug = NULL;
  if (nl) {
    *nl = 0;
    *sug = nl + 13;
  }
  return "UNSUPPORTED";
}
