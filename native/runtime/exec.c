/* Run one more process in a running container (velo-runtime exec, and the native front-end's sandbox exec/run).
 * It joins every namespace the container's init has (compared by inode with ours), its cgroup, and is set up
 * like the container's process (user, capabilities, no_new_privs, the container's seccomp filter).
 *
 * The pid (and time) namespace is joined by the caller only around the fork (setns(pid) changes where its
 * children go, so it is set back before this returns: a library caller forks other things later), the rest by the child
 * after it joined the cgroup through the host's cgroup fs. Set-up errors come back over a pipe, so the caller
 * learns why a process never ran instead of seeing one that exits.
 *
 * Not root, into a container with a user namespace of its own: joining its pid namespace needs CAP_SYS_ADMIN in
 * that user namespace, which only a process inside it has, and a process cannot leave a user namespace. So the
 * child joins the user namespace first, then the pid (and time) namespace and the rest, and clones the process
 * with CLONE_PARENT: it is our child (we wait for it and pass signals on, as always) and the first child exits. */
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "rt.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static void report(int fd, const struct velo_err *e, int code) __attribute__((noreturn));
static void report(int fd, const struct velo_err *e, int code) {
  write_all(fd, e->msg, strlen(e->msg));
  _exit(code);
}

/* the container's filter, compiled at create (seccomp.bpf); compiled here only for a state without it */
static int exec_seccomp(const struct container *c, struct oci_seccomp **sc, struct velo_err *e) {
  json_object *spec = cfg_get(cfg_get(c->config, "linux"), "seccomp");
  char bpf_path[4200];
  snprintf(bpf_path, sizeof bpf_path, "%s/seccomp.bpf", c->dir);
  struct stat bst;
  if (!spec || stat(bpf_path, &bst) < 0) return oci_seccomp_compile(spec, sc, e);
  char *buf = malloc((size_t)bst.st_size + 1);
  cleanup_fd int bfd = open(bpf_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  ssize_t got = buf && bfd >= 0 ? read(bfd, buf, (size_t)bst.st_size + 1) : -1;
  int r = got < 0 ? VELO_FAIL_ERRNO(e, "read %s", bpf_path) : oci_seccomp_from_bytes(buf, (size_t)got, sc, e);
  free(buf);
  return r;
}

/* our own pid/time namespace for children again (after joining the container's for one fork) */
static void ns_for_children_back(int own_pid, int own_time) {
  if (own_pid >= 0) setns(own_pid, CLONE_NEWPID);
  if (own_time >= 0) setns(own_time, NS_CLONE_FLAGS[NS_TIME]);
}

int container_exec(const struct container *c, json_object *process, const struct exec_opts *xo, pid_t *child_out, int *code,
                   struct velo_err *e) {
  *code = 1;
  const char *status = container_status(c);
  if (strcmp(status, "running") && strcmp(status, "created")) return velo_fail(e, 0, "cannot exec in container %s: it is %s", c->id, status);
  struct proc_plan pp;
  if (proc_plan(process, "process", &pp, e) < 0) return -1;
  struct oci_seccomp *sc = NULL;
  int rc = -1, nsfd[NS_COUNT], ep[2] = {-1, -1}, gp[2] = {-1, -1}, console = -1, relay_sock = -1, own_pid = -1, own_time = -1;
  cleanup_fd int pidfd = -1;
  for (int t = 0; t < NS_COUNT; t++) nsfd[t] = -1;
  if (exec_seccomp(c, &sc, e) < 0) goto out;
  /* a terminal without an engine's console socket: the caller relays it (as runc) */
  bool relay = pp.terminal && !xo->console_socket;
  if (relay && !xo->relay_sock) {
    velo_fail(e, 0, "a process with a terminal needs a console socket");
    goto out;
  }
  /* the init's namespaces, pinned: the pidfd keeps the pid from being reused while we open them */
  pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
  if (pidfd < 0) {
    velo_fail(e, 0, "container %s is not running", c->id);
    goto out;
  }
  for (int t = 0; t < NS_COUNT; t++) {
    char a[64], b[64];
    snprintf(a, sizeof a, "/proc/%d/ns/%s", (int)c->pid, NS_PROC_NAMES[t]);
    snprintf(b, sizeof b, "/proc/self/ns/%s", NS_PROC_NAMES[t]);
    struct stat sa, sb;
    if (stat(a, &sa) < 0 || stat(b, &sb) < 0) continue; /* a kernel without that namespace kind */
    if (sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev) continue;
    if ((nsfd[t] = open(a, O_RDONLY | O_CLOEXEC)) < 0) {
      VELO_FAIL_ERRNO(e, "open %s", a);
      goto out;
    }
  }
  if (!container_alive(c)) {
    velo_fail(e, 0, "container %s is not running", c->id);
    goto out;
  }
  if (relay) {
    int tp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tp) < 0) {
      VELO_FAIL_ERRNO(e, "socketpair");
      goto out;
    }
    relay_sock = tp[0], console = tp[1];
  } else if (pp.terminal && (console = console_connect(xo->console_socket, e)) < 0) {
    goto out;
  }
  bool user_first = rt_rootless() && nsfd[NS_USER] >= 0;
  if (!user_first && nsfd[NS_PID] >= 0 && ((own_pid = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC)) < 0 || setns(nsfd[NS_PID], CLONE_NEWPID) < 0)) {
    VELO_FAIL_ERRNO(e, "join the container's pid namespace");
    goto out;
  }
  if (!user_first && nsfd[NS_TIME] >= 0 &&
      ((own_time = open("/proc/self/ns/time", O_RDONLY | O_CLOEXEC)) < 0 || setns(nsfd[NS_TIME], NS_CLONE_FLAGS[NS_TIME]) < 0)) {
    VELO_FAIL_ERRNO(e, "join the container's time namespace");
    goto out;
  }
  if (pipe2(ep, O_CLOEXEC) < 0 || (user_first && pipe2(gp, O_CLOEXEC) < 0)) {
    VELO_FAIL_ERRNO(e, "pipe");
    goto out;
  }
  sigset_t set;
  proc_forward_set(&set);
  sigprocmask(SIG_BLOCK, &set, NULL);
  fflush(NULL);
  bool born_in_cg = false;
  pid_t child = c->has_cg ? oci_cgroup_clone(&c->cg, 0, &born_in_cg) : fork();
  if (child < 0) {
    VELO_FAIL_ERRNO(e, "fork");
    goto out;
  }
  if (child == 0) {
    close(ep[0]);
    proc_reset_signals();
    if (c->has_cg && oci_cgroup_join(&c->cg, 0, born_in_cg ? CG_V1 : CG_ALL, e) < 0) report(ep[1], e, 1);
    static const int ORDER[] = {NS_USER, NS_PID, NS_TIME, NS_IPC, NS_UTS, NS_NET, NS_CGROUP, NS_MNT};
    for (size_t i = 0; i < sizeof ORDER / sizeof *ORDER; i++) {
      int t = ORDER[i];
      if ((t == NS_PID || t == NS_TIME) && !user_first) continue; /* joined by us around the fork */
      if (nsfd[t] >= 0 && setns(nsfd[t], NS_CLONE_FLAGS[t]) < 0) VELO_FAIL_ERRNO(e, "join the container's %s namespace", NS_NAMES[t]), report(ep[1], e, 1);
    }
    if (user_first) {
      close(gp[0]);
      pid_t g = (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), NULL, NULL, NULL, NULL);
      if (g < 0) VELO_FAIL_ERRNO(e, "fork into the container's pid namespace"), report(ep[1], e, 1);
      if (g > 0) _exit(write_all(gp[1], &g, sizeof g) < 0 ? 1 : 0);
      close(gp[1]);
    }
    if (console >= 0) {
      if (setsid() < 0 || console_setup(console, pp.rows, pp.cols, e) < 0) report(ep[1], e, 1);
      close(console);
    } else setpgid(0, 0);
    char *path = NULL;
    if (proc_apply_early(&pp, e) < 0 || proc_default_home(&pp) < 0) report(ep[1], e, 1);
    if (proc_find_exec(&pp, &path, e) < 0) report(ep[1], e, strstr(e->msg, "not found") || strstr(e->msg, "no such file") ? 127 : 126);
    syscall(SYS_close_range, 3 + xo->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
    if (proc_finalize(&pp, sc, e) < 0) report(ep[1], e, 1);
    proc_exec(&pp, path, e);
    report(ep[1], e, errno == ENOENT ? 127 : 126);
  }
  close(ep[1]), ep[1] = -1;
  if (console >= 0) close(console), console = -1;
  if (user_first) {
    /* the first child hands over the process it cloned as ours (CLONE_PARENT), then exits */
    close(gp[1]), gp[1] = -1;
    pid_t g = -1;
    ssize_t n;
    do n = read(gp[0], &g, sizeof g);
    while (n < 0 && errno == EINTR);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    child = n == (ssize_t)sizeof g && g > 0 ? g : -1;
  }
  char msg[sizeof e->msg - 16];
  ssize_t got = 0, r;
  while ((r = read(ep[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0 || (r < 0 && errno == EINTR)) got += r > 0 ? r : 0;
  if (got > 0) {
    /* the process never ran: say why, with the code a shell would give (127 not found, 126 not executable, else 1) */
    msg[got] = 0;
    int st = 0;
    if (child > 0) waitpid(child, &st, 0);
    *code = child > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : 1;
    velo_fail(e, 0, "exec failed: %s", msg);
    goto out;
  }
  if (child < 0) {
    velo_fail(e, 0, "exec failed: the process was not started in the container's namespaces");
    goto out;
  }
  *child_out = child;
  if (xo->relay_sock) *xo->relay_sock = relay_sock, relay_sock = -1;
  rc = 0;
out:
  ns_for_children_back(own_pid, own_time);
  for (int t = 0; t < NS_COUNT; t++)
    if (nsfd[t] >= 0) close(nsfd[t]);
  if (own_pid >= 0) close(own_pid);
  if (own_time >= 0) close(own_time);
  if (ep[0] >= 0) close(ep[0]);
  if (ep[1] >= 0) close(ep[1]);
  for (int i = 0; i < 2; i++)
    if (gp[i] >= 0) close(gp[i]);
  if (console >= 0) close(console);
  if (relay_sock >= 0) close(relay_sock);
  oci_seccomp_free(sc);
  proc_plan_free(&pp);
  return rc;
}
