/* velo-runtime exec [--process F | ID CMD...]: run one more process in a running container. It joins every
 * namespace the container's init has (compared by inode with ours), its cgroup, and is set up like the
 * container's process (user, capabilities, no_new_privs, the container's seccomp filter).
 *
 * The pid namespace is joined by this process (setns(pid) only changes where its children go), the rest by
 * the child after it joined the cgroup through the host's cgroup fs. Set-up errors come back over a pipe, so
 * `exec` fails with the reason (exit 1 with --detach, as runc) instead of a process that never ran. */
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "rt.h"
#include "../common/ttyrelay.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static const int NS_FLAG[NS_COUNT] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP, 0x80};

static json_object *read_process(const char *path, struct velo_err *e) {
  cleanup_fd int fd = !strcmp(path, "-") ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "--process %s", path), NULL;
  size_t cap = 65536, got = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (got + 1 >= cap) buf = realloc(buf, cap *= 2);
    if (!buf) return velo_fail(e, ENOMEM, "--process"), NULL;
    ssize_t n = read(fd, buf + got, cap - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  buf[got] = 0;
  json_object *j = json_tokener_parse(buf);
  free(buf);
  if (!j) velo_fail(e, 0, "--process %s: not valid JSON", path);
  return j;
}

/* the container's process with args (and --cwd/--env/--user/--tty) replaced, as runc builds it */
static json_object *process_from_args(json_object *config, char **cmd, int n, const char *cwd, const char **env, int n_env, const char *user, bool tty, struct velo_err *e) {
  json_object *base = cfg_get(config, "process");
  json_object *p = NULL;
  if (!base || json_object_deep_copy(base, &p, NULL) < 0) return velo_fail(e, 0, "the container has no process to copy"), NULL;
  json_object *args = json_object_new_array();
  for (int i = 0; i < n; i++) json_object_array_add(args, json_object_new_string(cmd[i]));
  json_object_object_add(p, "args", args);
  json_object_object_add(p, "terminal", json_object_new_boolean(tty));
  json_object_object_del(p, "consoleSize");
  if (cwd) json_object_object_add(p, "cwd", json_object_new_string(cwd));
  if (n_env) {
    json_object *envs = cfg_get(p, "env");
    if (!envs) json_object_object_add(p, "env", envs = json_object_new_array());
    for (int i = 0; i < n_env; i++) json_object_array_add(envs, json_object_new_string(env[i]));
  }
  if (user) {
    char *end;
    unsigned long uid = strtoul(user, &end, 10), gid = 0;
    if (end == user || (*end && *end != ':')) return json_object_put(p), velo_fail(e, 0, "--user %s: expected UID[:GID]", user), NULL;
    if (*end == ':') {
      const char *g = end + 1;
      gid = strtoul(g, &end, 10);
      if (end == g || *end) return json_object_put(p), velo_fail(e, 0, "--user %s: expected UID[:GID]", user), NULL;
    }
    json_object *u = json_object_new_object();
    json_object_object_add(u, "uid", json_object_new_int64((int64_t)uid));
    json_object_object_add(u, "gid", json_object_new_int64((int64_t)gid));
    json_object_object_add(p, "user", u);
  }
  return p;
}

static void report(int fd, const struct velo_err *e, int code) __attribute__((noreturn));
static void report(int fd, const struct velo_err *e, int code) {
  write_all(fd, e->msg, strlen(e->msg));
  _exit(code);
}

int cmd_exec(int argc, char **argv) {
  const char *process = NULL, *pid_file = NULL, *console_socket = NULL, *cwd = NULL, *user = NULL, *preserve = NULL;
  const char *cap = NULL, *label = NULL, *apparmor = NULL;
  bool detach = false, tty = false, nnp = false;
  const char *envs[256];
  int n_env = 0;
  const struct flag flags[] = {
      {"process", 'p', true, &process, NULL}, {"pid-file", 0, true, &pid_file, NULL}, {"console-socket", 0, true, &console_socket, NULL},
      {"cwd", 0, true, &cwd, NULL}, {"user", 'u', true, &user, NULL}, {"preserve-fds", 0, true, &preserve, NULL},
      {"detach", 'd', false, NULL, &detach}, {"tty", 't', false, NULL, &tty}, {"no-new-privs", 0, false, NULL, &nnp},
      {"cap", 'c', true, &cap, NULL}, {"process-label", 0, true, &label, NULL}, {"apparmor", 0, true, &apparmor, NULL},
      {"env", 'e', false, NULL, NULL, envs, &n_env, 256},
      {NULL, 0, false, NULL, NULL, NULL, NULL, 0},
  };
  char *pos[1];
  int rest = 0;
  int n = parse_flags(argc, argv, flags, pos, 1, "exec", &rest);
  if (n < 0) return 1;
  if (n != 1) return rt_err("exec: needs a container id");
  if (cap || (label && *label) || (apparmor && *apparmor)) return rt_err("exec: --cap, --process-label and --apparmor are not supported (put capabilities in --process)");
  int preserve_fds = preserve ? atoi(preserve) : 0;
  struct velo_err e = {0};
  struct container c;
  if (container_load(pos[0], &c, &e) != 0) return container_free(&c), rt_verr(&e);
  const char *status = container_status(&c);
  if (strcmp(status, "running") && strcmp(status, "created")) return rt_err("cannot exec in container %s: it is %s", c.id, status);
  json_object *pj = process ? read_process(process, &e) : process_from_args(c.config, argv + rest, argc - rest, cwd, envs, n_env, user, tty, &e);
  if (!pj) return rt_verr(&e);
  if (!process && argc - rest < 1) return rt_err("exec: needs --process F or a command after the container id");
  if (nnp) json_object_object_add(pj, "noNewPrivileges", json_object_new_boolean(true));
  struct proc_plan pp;
  struct oci_seccomp *sc = NULL;
  if (proc_plan(pj, "process", &pp, &e) < 0) return rt_verr(&e);
  /* the container's filter, compiled at create (seccomp.bpf); compiled here only for a state without it */
  char bpf_path[4200];
  snprintf(bpf_path, sizeof bpf_path, "%s/seccomp.bpf", c.dir);
  struct stat bst;
  if (cfg_get(cfg_get(c.config, "linux"), "seccomp") && stat(bpf_path, &bst) == 0) {
    char *buf = malloc((size_t)bst.st_size + 1);
    cleanup_fd int bfd = open(bpf_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t got = buf && bfd >= 0 ? read(bfd, buf, (size_t)bst.st_size + 1) : -1;
    int r = got < 0 ? VELO_FAIL_ERRNO(&e, "read %s", bpf_path) : oci_seccomp_from_bytes(buf, (size_t)got, &sc, &e);
    free(buf);
    if (r < 0) return rt_verr(&e);
  } else if (oci_seccomp_compile(cfg_get(cfg_get(c.config, "linux"), "seccomp"), &sc, &e) < 0) {
    return rt_verr(&e);
  }
  /* a terminal in the foreground without an engine's console socket: we relay it ourselves (as runc) */
  bool relay = pp.terminal && !console_socket;
  if (relay && detach) return rt_err("exec: a detached process with a terminal needs --console-socket");
  /* the init's namespaces, pinned: the pidfd keeps the pid from being reused while we open them */
  cleanup_fd int pidfd = (int)syscall(SYS_pidfd_open, c.pid, 0);
  if (pidfd < 0) return rt_err("container %s is not running", c.id);
  int nsfd[NS_COUNT];
  for (int t = 0; t < NS_COUNT; t++) {
    nsfd[t] = -1;
    char a[64], b[64];
    snprintf(a, sizeof a, "/proc/%d/ns/%s", (int)c.pid, NS_PROC_NAMES[t]);
    snprintf(b, sizeof b, "/proc/self/ns/%s", NS_PROC_NAMES[t]);
    struct stat sa, sb;
    if (stat(a, &sa) < 0 || stat(b, &sb) < 0) continue; /* a kernel without that namespace kind */
    if (sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev) continue;
    if ((nsfd[t] = open(a, O_RDONLY | O_CLOEXEC)) < 0) return rt_err("open %s: %s", a, strerror(errno));
  }
  if (!container_alive(&c)) return rt_err("container %s is not running", c.id);
  int console = -1, relay_sock = -1;
  if (relay) {
    int tp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tp) < 0) return rt_err("socketpair: %s", strerror(errno));
    relay_sock = tp[0], console = tp[1];
  } else if (pp.terminal && (console = console_connect(console_socket, &e)) < 0) return rt_verr(&e);
  if (nsfd[NS_PID] >= 0 && setns(nsfd[NS_PID], CLONE_NEWPID) < 0) return rt_err("join the container's pid namespace: %s", strerror(errno));
  if (nsfd[NS_TIME] >= 0 && setns(nsfd[NS_TIME], NS_FLAG[NS_TIME]) < 0) return rt_err("join the container's time namespace: %s", strerror(errno));
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) return rt_err("pipe: %s", strerror(errno));
  sigset_t set;
  proc_forward_set(&set);
  sigprocmask(SIG_BLOCK, &set, NULL);
  fflush(NULL);
  pid_t child = fork();
  if (child < 0) return rt_err("fork: %s", strerror(errno));
  if (child == 0) {
    close(ep[0]);
    proc_reset_signals();
    if (c.has_cg && oci_cgroup_join(&c.cg, 0, &e) < 0) report(ep[1], &e, 1);
    static const int ORDER[] = {NS_USER, NS_IPC, NS_UTS, NS_NET, NS_CGROUP, NS_MNT};
    for (size_t i = 0; i < sizeof ORDER / sizeof *ORDER; i++) {
      int t = ORDER[i];
      if (nsfd[t] >= 0 && setns(nsfd[t], NS_FLAG[t]) < 0) VELO_FAIL_ERRNO(&e, "join the container's %s namespace", NS_NAMES[t]), report(ep[1], &e, 1);
    }
    if (console >= 0) {
      if (setsid() < 0 || console_setup(console, pp.rows, pp.cols, &e) < 0) report(ep[1], &e, 1);
      close(console);
    } else setpgid(0, 0);
    char *path = NULL;
    if (proc_apply_early(&pp, &e) < 0 || proc_default_home(&pp) < 0) report(ep[1], &e, 1);
    if (proc_find_exec(&pp, &path, &e) < 0) report(ep[1], &e, strstr(e.msg, "not found") || strstr(e.msg, "no such file") ? 127 : 126);
    syscall(SYS_close_range, 3 + preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
    if (proc_finalize(&pp, sc, &e) < 0) report(ep[1], &e, 1);
    proc_exec(&pp, path, &e);
    report(ep[1], &e, errno == ENOENT ? 127 : 126);
  }
  close(ep[1]);
  for (int t = 0; t < NS_COUNT; t++)
    if (nsfd[t] >= 0) close(nsfd[t]);
  if (console >= 0) close(console);
  char msg[1024];
  ssize_t got = 0, r;
  while ((r = read(ep[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0 || (r < 0 && errno == EINTR)) got += r > 0 ? r : 0;
  close(ep[0]);
  if (got > 0) {
    /* the process never ran: say why, and exit as a shell would (127 not found, 126 not executable, else 1) */
    msg[got] = 0;
    int st = 0;
    waitpid(child, &st, 0);
    rt_err("exec failed: %s", msg);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
  }
  if (pid_file && write_pid_file(pid_file, child, &e) < 0) return kill(child, SIGKILL), rt_verr(&e);
  if (detach) return 0;
  if (relay_sock >= 0) {
    int master = console_recv(relay_sock, &e);
    close(relay_sock);
    if (master < 0) return kill(child, SIGKILL), rt_verr(&e);
    return tty_relay(master, child, PROC_FORWARD, PROC_N_FORWARD);
  }
  return proc_wait_forwarding(child, &set);
}
