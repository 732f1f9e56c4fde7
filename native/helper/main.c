/* velo-helper: the native half of `velo sandbox`. The TypeScript side computes a plan (src/sandbox/plan.ts)
 * and passes it in $VELO_PLAN; this program performs it in a fixed order and fails closed:
 *
 *   create: join cgroups → clone(new mnt, pid, uts, ipc, net, cgroup ns) → [child, pid 1] mounts (overlay root,
 *           /proc, ro /sys, /dev) → hostname → lo up → pivot_root + detach old root → caps (KILL only) →
 *           no_new_privs → seccomp → init loop.  Prints "PID STARTTIME" once the sandbox is ready.
 *   exec:   open the sandbox's ns files (pinned by pidfd + start time) → setns all → fork → join cgroups →
 *           chdir → drop bounding caps → user → caps → no_new_privs → seccomp → execvp.  Exit code and
 *           signals are passed back (128+N for a signal).
 *   kill PID STARTTIME SIGNAL TIMEOUT_MS: signal a sandbox's init through a pidfd and wait for it to exit.
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

#include "caps.h"
#include "cgroup.h"
#include "init.h"
#include "mounts.h"
#include "ns.h"
#include "pivot.h"
#include "plan.h"
#include "seccomp.h"
#include "tty.h"

extern char **environ;

#define INIT_GRACE_MS 10000

static int lock_down(uint64_t caps, int seccomp, struct velo_err *e) {
  if (caps_drop_bounding(caps, e) < 0) return -1;
  if (caps_set(caps, e) < 0) return -1;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return VELO_FAIL_ERRNO(e, "no_new_privs");
  if (seccomp && seccomp_default(e) < 0) return -1;
  return 0;
}

/* pid 1 of the new sandbox: build its world, lock itself down, report, then reap forever. */
static void sandbox_init(const struct plan *p, int syncfd) __attribute__((noreturn));
static void sandbox_init(const struct plan *p, int syncfd) {
  struct velo_err e = {0};
  if (setsid() < 0) VELO_FAIL_ERRNO(&e, "setsid");
  /* (the memory cgroup's OOM killer picks the largest task; init stays tiny, so a tenant's hog goes first) */
  else if (setup_mounts(p, &e) < 0) {
  } else if (sethostname(p->hostname, strlen(p->hostname)) < 0) VELO_FAIL_ERRNO(&e, "sethostname %s", p->hostname);
  else if (!p->net_none && loopback_up(&e) < 0) {
  } else if (pivot_into(p->root, &e) < 0) {
  } else {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) VELO_FAIL_ERRNO(&e, "stdio to /dev/null");
    else if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) VELO_FAIL_ERRNO(&e, "set non-dumpable");
    /* init only signals and reaps: it keeps CAP_KILL and nothing else */
    else if (lock_down(1ULL << CAP_KILL, 1, &e) == 0) {
      if (null > 2) close(null);
      if (write_all(syncfd, "OK", 2) < 0) _exit(1);
      close(syncfd);
      init_loop(INIT_GRACE_MS);
    }
  }
  char msg[sizeof e.msg + 2];
  int n = snprintf(msg, sizeof msg, "E%s", e.msg);
  write_all(syncfd, msg, (size_t)n);
  _exit(1);
}

static int cmd_create(struct plan *p) {
  struct velo_err e = {0};
  if (!p->root || !p->upper || !p->work || !p->n_lowers || !p->hostname) {
    fprintf(stderr, "velo-helper: create: plan needs root, upper, work, lower and hostname\n");
    return 125;
  }
  int cg[PLAN_MAX_LIST];
  if (cgroup_open_all(p, cg, &e) < 0 || cgroup_join_fds(p, cg, &e) < 0) die_verr("create", &e);
  int sp[2];
  if (pipe2(sp, O_CLOEXEC) < 0) die_verr("create", (VELO_FAIL_ERRNO(&e, "pipe"), &e));
  pid_t pid = clone_into_new_ns(SANDBOX_NS_FLAGS, &e);
  if (pid < 0) die_verr("create", &e);
  if (pid == 0) {
    close(sp[0]);
    for (size_t i = 0; i < p->n_cgroups; i++) close(cg[i]);
    sandbox_init(p, sp[1]);
  }
  close(sp[1]);
  char buf[1024];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(sp[0], buf + got, sizeof buf - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
    if (got >= sizeof buf - 1) break;
  }
  buf[got] = 0;
  if (got >= 2 && !memcmp(buf, "OK", 2)) {
    unsigned long long start;
    if (proc_starttime(pid, &start, NULL) < 0) {
      fprintf(stderr, "velo-helper: create: sandbox init exited right after start\n");
      return 125;
    }
    printf("%d %llu\n", (int)pid, start);
    return 0;
  }
  waitpid(pid, NULL, 0);
  fprintf(stderr, "velo-helper: create: %s\n", got > 1 ? buf + 1 : "sandbox init died during setup");
  return 125;
}

static const int FORWARD[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};

static int cmd_exec(struct plan *p) {
  struct velo_err e = {0};
  if (!p->pid || !p->n_argv) {
    fprintf(stderr, "velo-helper: exec: plan needs pid and arg\n");
    return 125;
  }
  struct ns_fds ns;
  if (ns_open(p->pid, p->pid_start, &ns, &e) < 0) die_verr("exec", &e);
  int cg[PLAN_MAX_LIST];
  if (cgroup_open_all(p, cg, &e) < 0) die_verr("exec", &e);
  /* Not dumpable: a tenant process must never ptrace us or our child while it still holds full caps. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die_verr("exec", (VELO_FAIL_ERRNO(&e, "set non-dumpable"), &e));
  if (ns_enter(&ns, &e) < 0) die_verr("exec", &e);
  ns_close(&ns);
  /* -t: a pty of the sandbox's own devpts (so `tty` names it inside), relayed to our terminal */
  struct sb_tty tty = {.master = -1};
  int use_tty = p->tty && isatty(0);
  if (use_tty && tty_open_in_sandbox(&tty, &e) < 0) die_verr("exec", &e);
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (size_t i = 0; i < sizeof FORWARD / sizeof FORWARD[0]; i++) sigaddset(&set, FORWARD[i]);
  sigprocmask(SIG_BLOCK, &set, &old);
  pid_t child = fork();
  if (child < 0) die_verr("exec", (VELO_FAIL_ERRNO(&e, "fork"), &e));
  if (child == 0) {
    if (cgroup_join_fds(p, cg, &e) < 0) die_verr("exec", &e);
    for (size_t i = 0; i < p->n_cgroups; i++) close(cg[i]);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (use_tty) {
      if (tty_attach_child(&tty, &e) < 0) die_verr("exec", &e);
    } else
      setpgid(0, 0);
    const char *cwd = p->cwd ? p->cwd : "/";
    if (chdir(cwd) < 0) die_verr("exec", (VELO_FAIL_ERRNO(&e, "chdir %s", cwd), &e));
    if (caps_drop_bounding(p->caps, &e) < 0) die_verr("exec", &e);
    if (p->has_user && switch_user(p->uid, p->gid, &e) < 0) die_verr("exec", &e);
    if (caps_set(p->caps, &e) < 0) die_verr("exec", &e);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die_verr("exec", (VELO_FAIL_ERRNO(&e, "no_new_privs"), &e));
    if (p->seccomp && seccomp_default(&e) < 0) die_verr("exec", &e);
    static char *empty[] = {NULL};
    environ = p->env ? p->env : empty;
    execvp(p->argv[0], p->argv);
    int err = errno;
    fprintf(stderr, "velo: %s: %s\n", p->argv[0], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
  }
  for (size_t i = 0; i < p->n_cgroups; i++) close(cg[i]);
  if (use_tty) return tty_relay(tty.master, child, FORWARD, sizeof FORWARD / sizeof FORWARD[0]);
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      int st;
      pid_t r = waitpid(child, &st, WNOHANG);
      if (r == child) {
        if (WIFEXITED(st)) return WEXITSTATUS(st);
        if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
      }
      continue;
    }
    kill(child, sig);
  }
}

static int cmd_kill(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: velo-helper kill PID STARTTIME SIGNAL TIMEOUT_MS\n");
    return 125;
  }
  char *end;
  errno = 0;
  long pid_l = strtol(argv[2], &end, 10);
  int bad = errno || *end || pid_l < 2 || pid_l > 4194304;
  unsigned long long want = strtoull(argv[3], &end, 10), start;
  bad |= !*argv[3] || *end;
  long sig = strtol(argv[4], &end, 10);
  bad |= !*argv[4] || *end || sig < 1 || sig > 64;
  long timeout = strtol(argv[5], &end, 10);
  bad |= !*argv[5] || *end || timeout < 0 || timeout > 3600000;
  if (bad) {
    fprintf(stderr, "velo-helper kill: bad arguments (PID STARTTIME SIGNAL 1-64 TIMEOUT_MS)\n");
    return 125;
  }
  pid_t pid = (pid_t)pid_l;
  cleanup_fd int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
  char state;
  if (pfd < 0 || proc_starttime(pid, &start, &state) < 0 || start != want || state == 'Z' || state == 'X') return 3;
  if (syscall(SYS_pidfd_send_signal, pfd, (int)sig, NULL, 0) < 0) {
    if (errno == ESRCH) return 3;
    fprintf(stderr, "velo-helper kill: signal %ld to pid %d: %s\n", sig, (int)pid, strerror(errno));
    return 125;
  }
  if (timeout <= 0) return 0;
  struct pollfd pf = {.fd = pfd, .events = POLLIN};
  int r;
  do r = poll(&pf, 1, (int)timeout);
  while (r < 0 && errno == EINTR);
  return r > 0 ? 0 : 2;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: velo-helper create|exec (plan in $VELO_PLAN) | kill PID STARTTIME SIGNAL TIMEOUT_MS\n");
    return 125;
  }
  if (!strcmp(argv[1], "kill")) return cmd_kill(argc, argv);
  const char *env = getenv("VELO_PLAN");
  if (!env) {
    fprintf(stderr, "velo-helper: no plan in $VELO_PLAN\n");
    return 125;
  }
  char *text = strdup(env);
  struct plan p;
  struct velo_err e = {0};
  if (!text || plan_parse(text, &p, &e) < 0) die_verr("plan", &e);
  if (!strcmp(argv[1], "create")) return cmd_create(&p);
  if (!strcmp(argv[1], "exec")) return cmd_exec(&p);
  fprintf(stderr, "velo-helper: unknown command %s\n", argv[1]);
  return 125;
}
