/* The workload monitor: one small process per tenant that has a main command (`velo sandbox create NAME -- CMD`,
 * `sandbox run -d`), as Podman's conmon is per container. velo has no resident daemon, so whatever must outlive
 * the CLI call that started a workload lives here:
 *   - it starts the main command in the running tenant (the runtime library's exec, with the tenant's plan from
 *     state.json "main": argv, uid, gid, home, workdir, env) with stdout and stderr on pipes, and writes what
 *     arrives to tenants/NAME/logs/container.log in the CRI log format (one record per line: RFC 3339 time with
 *     ns, stdout|stderr, F (full line) or P (partial: the line goes on in the next record), the text), rotated at
 *     "logs".maxSize into container.log.1 ... (maxFiles in all);
 *   - it records the workload in tenants/NAME/workload.json (atomically): startedAt, restartCount, the main
 *     process's host pid while it runs, then exitCode and finishedAt;
 *   - when the main command exits by itself it applies "restart" (no | on-failure[:max] | always): a restart ends
 *     the tenant's other processes and runs the command again in the same tenant (same init, namespaces, files
 *     and address), after a back-off that doubles from 100 ms to 10 s (reset after 10 s of running); no restart
 *     stops the tenant as `velo sandbox stop` does (TERM to init, KILL after 10 s, the runtime forgets it);
 *   - a stop from outside (sandbox stop/rm/kill: sb_signal leaves tenants/NAME/stop-request first) is final: the
 *     exit is recorded and the monitor leaves, never restarting.
 * tenants/NAME/monitor.pid holds "PID STARTTIME" while it runs; sb_signal waits for it to leave, so a stop or rm
 * returns with the exit recorded and nothing still writing into the tenant dir. */
#include "monitor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/sysutil.h"
#include "../runtime/rt.h"
#include "events.h"
#include "oci.h"
#include "rtcall.h"
#include "sblock.h"
#include "util.h"

#define LINE_MAX_PARTIAL 16384 /* a longer line is written in P records of this size, as the CRI loggers do */
#define STOP_GRACE_MS 10000

void workload_free(struct workload *w) {
  for (int i = 0; i < w->argc; i++) free(w->argv[i]);
  for (int i = 0; i < w->n_env; i++) free(w->env[i]);
  free(w->argv);
  free(w->env);
  free(w->home);
  free(w->workdir);
  memset(w, 0, sizeof *w);
}

static char **str_array(json_object *a, int *n) {
  if (!a || !json_object_is_type(a, json_type_array)) return NULL;
  size_t len = json_object_array_length(a);
  char **v = calloc(len + 1, sizeof *v);
  if (!v) return NULL;
  for (size_t i = 0; i < len; i++) {
    json_object *x = json_object_array_get_idx(a, i);
    if (!json_object_is_type(x, json_type_string)) {
      for (size_t j = 0; j < i; j++) free(v[j]);
      free(v);
      return NULL;
    }
    v[i] = strdup(json_object_get_string(x));
  }
  *n = (int)len;
  return v;
}

static char *opt_str(json_object *o, const char *k) {
  json_object *v;
  return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? strdup(json_object_get_string(v)) : NULL;
}

static long long opt_int(json_object *o, const char *k, long long dflt) {
  json_object *v;
  return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : dflt;
}

int workload_read(const char *home, const char *name, struct workload *w) {
  memset(w, 0, sizeof *w);
  char p[4300];
  snprintf(p, sizeof p, "%s/tenants/%s/state.json", home, name);
  json_object *st = json_object_from_file(p), *m, *r, *l;
  if (!st) return -1;
  int rc = 0;
  if (json_object_object_get_ex(st, "main", &m) && json_object_is_type(m, json_type_object)) {
    json_object *argv, *env;
    rc = -1;
    json_object_object_get_ex(m, "argv", &argv);
    json_object_object_get_ex(m, "env", &env);
    w->argv = str_array(argv, &w->argc);
    w->env = str_array(env, &w->n_env);
    long long uid = opt_int(m, "uid", -1), gid = opt_int(m, "gid", -1);
    if (w->argv && w->argc > 0 && w->env && uid >= 0 && uid <= UINT32_MAX && gid >= 0 && gid <= UINT32_MAX) {
      w->uid = (uid_t)uid;
      w->gid = (gid_t)gid;
      w->home = opt_str(m, "home");
      w->workdir = opt_str(m, "workdir");
      rc = 1;
    }
  }
  w->policy = RESTART_NO;
  if (rc == 1 && json_object_object_get_ex(st, "restart", &r) && json_object_is_type(r, json_type_object)) {
    json_object *pol;
    const char *ps = json_object_object_get_ex(r, "policy", &pol) ? json_object_get_string(pol) : "no";
    w->policy = !strcmp(ps, "always") ? RESTART_ALWAYS : !strcmp(ps, "on-failure") ? RESTART_ON_FAILURE : RESTART_NO;
    w->max_restarts = (int)opt_int(r, "max", 0);
  }
  /* "logs" as Node wrote it with the main command (src/sandbox/workload.ts parseLogOpts: defaults and bounds are
   * decided there); without it, or out of those bounds, the state is not one Node wrote */
  if (rc == 1) {
    w->max_size = json_object_object_get_ex(st, "logs", &l) ? opt_int(l, "maxSize", -1) : -1;
    w->max_files = json_object_object_get_ex(st, "logs", &l) ? (int)opt_int(l, "maxFiles", -1) : -1;
    if (w->max_size < 1024 || w->max_files < 1 || w->max_files > 100) rc = -1;
    json_object *ar;
    w->auto_remove = json_object_object_get_ex(st, "autoRemove", &ar) && json_object_get_boolean(ar);
  }
  json_object_put(st);
  if (rc != 1) workload_free(w);
  return rc;
}

/* ---------------------------------------------------------------------------------------------------- logs */

struct logw {
  int dfd; /* tenants/NAME/logs */
  int fd;  /* container.log, O_APPEND */
  long long size, max_size;
  int max_files;
};

static int log_open(struct logw *lw) {
  lw->fd = openat(lw->dfd, "container.log", O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lw->fd < 0) return -1;
  struct stat st;
  lw->size = fstat(lw->fd, &st) == 0 ? st.st_size : 0;
  return 0;
}

/* container.log -> .1 -> .2 ...; the oldest beyond max_files goes */
static void log_rotate(struct logw *lw) {
  close(lw->fd);
  char from[32], to[32];
  for (int i = lw->max_files - 1; i >= 1; i--) {
    if (i == 1) snprintf(from, sizeof from, "container.log");
    else snprintf(from, sizeof from, "container.log.%d", i - 1);
    snprintf(to, sizeof to, "container.log.%d", i);
    renameat(lw->dfd, from, lw->dfd, to);
  }
  if (lw->max_files == 1) unlinkat(lw->dfd, "container.log", 0);
  if (log_open(lw) < 0) lw->fd = -1;
}

static void rfc3339_now(char *buf, size_t len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, len - n, ".%09ldZ", ts.tv_nsec);
}

static void log_record(struct logw *lw, const char *stream, bool partial, const char *text, size_t n) {
  if (lw->fd < 0) return;
  char head[96];
  rfc3339_now(head, 48);
  size_t h = strlen(head);
  h += (size_t)snprintf(head + h, sizeof head - h, " %s %c ", stream, partial ? 'P' : 'F');
  long long rec = (long long)(h + n + 1);
  if (lw->size > 0 && lw->size + rec > lw->max_size) {
    log_rotate(lw);
    if (lw->fd < 0) return;
  }
  struct iovec iov[3] = {{head, h}, {(void *)text, n}, {"\n", 1}};
  ssize_t w = writev(lw->fd, iov, 3);
  if (w > 0) lw->size += w;
}

struct stream {
  const char *name;
  int fd;
  char buf[LINE_MAX_PARTIAL];
  size_t len;
};

/* what arrived on s: whole lines as F records; a line longer than the buffer in P records */
static bool stream_pump(struct stream *s, struct logw *lw) {
  char in[65536];
  ssize_t n = read(s->fd, in, sizeof in);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) {
    if (s->len) log_record(lw, s->name, false, s->buf, s->len);
    s->len = 0;
    close(s->fd);
    s->fd = -1;
    return false;
  }
  for (ssize_t i = 0; i < n; i++) {
    if (in[i] == '\n') {
      log_record(lw, s->name, false, s->buf, s->len);
      s->len = 0;
      continue;
    }
    if (s->len == sizeof s->buf) {
      log_record(lw, s->name, true, s->buf, s->len);
      s->len = 0;
    }
    s->buf[s->len++] = in[i];
  }
  return true;
}

/* ------------------------------------------------------------------------------------------------ records */

struct wstate {
  char started_at[40], finished_at[40];
  int restarts;
  long main_pid; /* host pid while it runs, else 0 */
  bool exited;
  int exit_code;
  bool oom_killed; /* the kernel killed a process of the tenant for its memory limit while this run lasted */
};

static void write_workload(int tdfd, const struct wstate *ws) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "{\"startedAt\":\"%s\",\"restartCount\":%d,\"running\":%s", ws->started_at, ws->restarts, ws->exited ? "false" : "true");
  if (ws->main_pid > 0) n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"mainPid\":%ld", ws->main_pid);
  if (ws->exited) n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"exitCode\":%d,\"finishedAt\":\"%s\"", ws->exit_code, ws->finished_at);
  if (ws->exited && ws->oom_killed) n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"oomKilled\":true");
  n += snprintf(buf + n, sizeof buf - (size_t)n, "}\n");
  write_file_atomic_at(tdfd, "workload.json", buf, (size_t)n, 0600);
}

/* The kernel's count of OOM kills in the tenant's memory cgroup: "oom_kill N" in memory.events (v2) or
 * memory.oom_control (v1); the memory cgroup is the first of the state's cgroups (src/sandbox/cgroup.ts names them).
 * -1 when there is none (a rootless tenant on a host that delegates no cgroup) or the kernel does not count. */
static long oom_kills(const struct tstate *s) {
  if (!s->cgroups.n) return -1;
  const char *files[] = {"memory.events", "memory.oom_control"};
  for (size_t i = 0; i < 2; i++) {
    char p[PATH_MAX], buf[1024];
    if (snprintf(p, sizeof p, "%s/%s", s->cgroups.v[0], files[i]) >= (int)sizeof p) return -1;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    const char *k = strstr(buf, "oom_kill ");
    if (k && (k == buf || k[-1] == '\n')) return strtol(k + 9, NULL, 10);
  }
  return -1;
}

static bool stop_requested(int tdfd) { return faccessat(tdfd, "stop-request", F_OK, AT_SYMLINK_NOFOLLOW) == 0; }

static long long mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Every process of the tenant's pid namespace but its init (the namespace is init's: compared by inode), until
 * none is left: what a restart clears away, as a restarted Docker container starts with none of them. */
static void kill_all_but_init(pid_t init) {
  char p[64];
  struct stat ns;
  snprintf(p, sizeof p, "/proc/%d/ns/pid", (int)init);
  if (stat(p, &ns) < 0) return;
  for (int round = 0; round < 50; round++) {
    int found = 0;
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
      char *end;
      long pid = strtol(de->d_name, &end, 10);
      if (*end || pid <= 0 || pid == init) continue;
      snprintf(p, sizeof p, "/proc/%ld/ns/pid", pid);
      struct stat st;
      if (stat(p, &st) == 0 && st.st_ino == ns.st_ino && st.st_dev == ns.st_dev) {
        kill((pid_t)pid, SIGKILL);
        found++;
      }
    }
    closedir(d);
    if (!found) return;
    struct timespec t = {0, 20 * 1000000};
    nanosleep(&t, NULL);
  }
}

/* Start the main command in the running tenant, stdout/stderr on fresh pipes. Its pid, or -1 with err. */
static pid_t start_main(const struct tstate *s, const struct workload *w, struct stream *out, struct stream *errs, char *err, size_t errlen) {
  int po[2], pe[2];
  if (pipe2(po, O_CLOEXEC) < 0) return snprintf(err, errlen, "pipe: %s", strerror(errno)), -1;
  if (pipe2(pe, O_CLOEXEC) < 0) return close(po[0]), close(po[1]), snprintf(err, errlen, "pipe: %s", strerror(errno)), -1;
  /* the process inherits our stdio (as from velo-runtime exec): point 1 and 2 at the pipes for the exec only */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  dup2(null, 0);
  dup2(po[1], 1);
  dup2(pe[1], 2);
  close(po[1]);
  close(pe[1]);
  struct velo_err e = {0};
  struct container c;
  pid_t child = -1;
  int code = 1;
  if (container_load(s->name, &c, &e) == 0) {
    struct oci_exec x = {.workdir = w->workdir, .uid = w->uid, .gid = w->gid, .user_home = w->home,
                         .env = (const char *const *)w->env, .n_env = w->n_env, .argv = (const char *const *)w->argv, .argc = w->argc};
    json_object *p = oci_sandbox_process(s, &x);
    struct exec_opts xo = {0};
    if (!p || container_exec(&c, p, &xo, &child, &code, &e) < 0) child = -1;
    json_object_put(p);
  }
  container_free(&c);
  /* the write ends now belong to the main process alone: its exit (and its children's) gives EOF */
  dup2(null, 1);
  dup2(null, 2);
  close(null);
  if (child < 0) {
    snprintf(err, errlen, "%s", e.msg[0] ? e.msg : "cannot start the main command");
    close(po[0]);
    close(pe[0]);
    return -1;
  }
  fcntl(po[0], F_SETFL, O_NONBLOCK);
  fcntl(pe[0], F_SETFL, O_NONBLOCK);
  out->fd = po[0];
  out->len = 0;
  errs->fd = pe[0];
  errs->len = 0;
  return child;
}

/* Pump the logs until the main process has exited and both pipes are at EOF; after the exit, what is left
 * (background children holding the pipes) is given until end_ms, then the pipes are closed. Its wait status. */
static int pump_until_exit(pid_t child, struct stream *out, struct stream *errs, struct logw *lw) {
  int pfd = (int)syscall(SYS_pidfd_open, child, 0);
  int status = 0;
  bool reaped = false;
  long long drain_until = -1;
  for (;;) {
    struct pollfd fds[3];
    int n = 0, io = -1, ie = -1, ip = -1;
    if (out->fd >= 0) io = n, fds[n++] = (struct pollfd){.fd = out->fd, .events = POLLIN};
    if (errs->fd >= 0) ie = n, fds[n++] = (struct pollfd){.fd = errs->fd, .events = POLLIN};
    if (!reaped && pfd >= 0) ip = n, fds[n++] = (struct pollfd){.fd = pfd, .events = POLLIN};
    if (n == 0) break;
    int timeout = -1;
    if (reaped) {
      long long left = drain_until - mono_ms();
      if (left <= 0) break;
      timeout = (int)left;
    } else if (pfd < 0)
      timeout = 200; /* no pidfd: poll the child */
    int r = poll(fds, (nfds_t)n, timeout);
    if (r < 0 && errno != EINTR) break;
    if (io >= 0 && fds[io].revents) stream_pump(out, lw);
    if (ie >= 0 && fds[ie].revents) stream_pump(errs, lw);
    if (!reaped && ((ip >= 0 && fds[ip].revents) || pfd < 0)) {
      if (waitpid(child, &status, pfd < 0 ? WNOHANG : 0) == child) {
        reaped = true;
        /* background processes may hold the pipes: whatever they write while the tenant ends is still kept */
        drain_until = mono_ms() + 200;
      }
    }
  }
  if (pfd >= 0) close(pfd);
  return status;
}

static void close_stream(struct stream *st, struct logw *lw) {
  while (st->fd >= 0 && stream_pump(st, lw)) {
    struct pollfd p = {.fd = st->fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) break;
  }
  if (st->fd >= 0) {
    if (st->len) log_record(lw, st->name, false, st->buf, st->len);
    st->len = 0;
    close(st->fd);
    st->fd = -1;
  }
}

/* The monitor's life (a child of the boot, session leader, stdio /dev/null). report: where the boot waits for
 * "ok" or the error of the first start. */
/* Does tenants/NAME/waiters/ name a live process (a `velo sandbox wait` that has not read the exit yet)? */
static bool waiters_alive(int tdfd) {
  int fd = openat(tdfd, "waiters", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  DIR *d = fdopendir(fd);
  if (!d) return close(fd), false;
  bool alive = false;
  struct dirent *e;
  while (!alive && (e = readdir(d))) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (e->d_name[0] != '.' && !*end && pid > 0 && pid < 4194304 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) alive = true;
  }
  closedir(d);
  return alive;
}

/* The monitor's own stop of its tenant (the main command ended, no restart), under the locks `velo sandbox stop`
 * takes (sandbox_stop.c): the sandbox's, so no start, stop, rm or restart runs through it, then its pause holds',
 * so no snapshot or commit begins to hold it meanwhile. The sandbox lock is tried, never waited on: a stop or rm
 * from outside holds it while it waits for this monitor to leave, and leaves a stop-request first — that call then
 * stops the tenant, and the monitor only leaves. A snapshot or commit holding the tenant paused (pause-holds) is
 * waited for, at most 60 s as the CLI's stop waits, the locks let go meanwhile; then it is stopped anyway. */
static void stop_self(const struct front_ctx *ctx, const char *home, struct tstate *s, int tdfd) {
  char err[2048], p[4400];
  long long holds_until = mono_ms() + 60000;
  for (;;) {
    if (stop_requested(tdfd)) return;
    int lk = sb_lock_how(home, s->name, false);
    if (lk < 0 && errno != EWOULDBLOCK) return; /* the sandbox went (an rm) */
    if (lk >= 0) {
      snprintf(p, sizeof p, "%s/tenants/%s/pause-lock", home, s->name);
      int plk = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
      while (plk >= 0 && flock(plk, LOCK_EX) < 0 && errno == EINTR) {
      }
      snprintf(p, sizeof p, "%s/tenants/%s/pause-holds", home, s->name);
      if (faccessat(AT_FDCWD, p, F_OK, AT_SYMLINK_NOFOLLOW) != 0 || mono_ms() >= holds_until) {
        /* the state again, under the lock: a stop and start meanwhile made another init, which is not ours to end */
        struct tstate now;
        if (!stop_requested(tdfd) && state_read(home, s->name, &now) == STATE_OK && state_running(&now) && now.pid == s->pid) {
          if (sb_signal(ctx, home, &now, SIGTERM, STOP_GRACE_MS, err, sizeof err) == 2) sb_signal(ctx, home, &now, SIGKILL, 5000, err, sizeof err);
          sb_rt_delete(ctx, home, s->name, err, sizeof err);
          event_emit(home, "sandbox", "stop", s->name, NULL, 0);
        }
        if (plk >= 0) close(plk);
        sb_unlock(lk);
        return;
      }
      if (plk >= 0) close(plk);
      sb_unlock(lk);
    }
    struct timespec t = {0, 20 * 1000000};
    nanosleep(&t, NULL);
  }
}

static void monitor_run(const struct front_ctx *ctx, const char *home, struct tstate *s, const struct workload *w, int report, int tdfd) {
  char err[2048];
  mkdirat(tdfd, "logs", 0700);
  struct logw lw = {.dfd = openat(tdfd, "logs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), .fd = -1, .max_size = w->max_size, .max_files = w->max_files};
  if (lw.dfd < 0 || log_open(&lw) < 0) {
    dprintf(report, "cannot open the log of sandbox %s: %s", s->name, strerror(errno));
    _exit(1);
  }
  struct wstate ws = {0};
  struct stream out = {.name = "stdout", .fd = -1}, errs = {.name = "stderr", .fd = -1};
  long long backoff = 100;
  bool auto_remove_now = false;
  for (;;) {
    iso_now(ws.started_at, sizeof ws.started_at);
    pid_t child = start_main(s, w, &out, &errs, err, sizeof err);
    if (child < 0) {
      if (report >= 0) {
        dprintf(report, "cannot start the main command: %s", err);
        _exit(1);
      }
      log_record(&lw, "stderr", false, err, strlen(err));
      ws.exited = true, ws.exit_code = 127, ws.main_pid = 0;
      iso_now(ws.finished_at, sizeof ws.finished_at);
      write_workload(tdfd, &ws);
      break;
    }
    ws.main_pid = child, ws.exited = false, ws.oom_killed = false;
    write_workload(tdfd, &ws);
    /* what starting it allocated (the process spec, the runtime's records) is free now: give those pages back, as
     * this process lives as long as the tenant */
    malloc_trim(0);
    if (report >= 0) {
      write_all(report, "ok", 2);
      close(report);
      report = -1;
    }
    long long t0 = mono_ms();
    long oom_before = oom_kills(s);
    int status = pump_until_exit(child, &out, &errs, &lw);
    ws.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    /* as Docker: an "oom" event before the "die" of a run during which the memory limit killed something (the main
     * command or any other process of the tenant), and OOMKilled in the record */
    long oom_after = oom_kills(s);
    ws.oom_killed = oom_before >= 0 && oom_after > oom_before;
    if (ws.oom_killed) event_emit(home, "sandbox", "oom", s->name, NULL, 0);
    {
      char code[32];
      snprintf(code, sizeof code, "exitCode=%d", ws.exit_code);
      const char *attrs[] = {code, ws.oom_killed ? "oomKilled=true" : NULL};
      event_emit(home, "sandbox", "die", s->name, attrs, ws.oom_killed ? 2 : 1);
    }
    ws.exited = true, ws.main_pid = 0;
    iso_now(ws.finished_at, sizeof ws.finished_at);
    bool stopped = stop_requested(tdfd);
    bool again = !stopped && (w->policy == RESTART_ALWAYS ||
                              (w->policy == RESTART_ON_FAILURE && ws.exit_code != 0 && (w->max_restarts <= 0 || ws.restarts < w->max_restarts)));
    if (!again) {
      close_stream(&out, &lw);
      close_stream(&errs, &lw);
      write_workload(tdfd, &ws);
      /* the main command ended by itself: the tenant stops, as `velo sandbox stop` would stop it */
      if (!stopped && state_running(s)) stop_self(ctx, home, s, tdfd);
      auto_remove_now = w->auto_remove && !stopped;
      break;
    }
    /* a restart: the tenant's other processes go, the command runs again in the same tenant */
    kill_all_but_init((pid_t)s->pid);
    close_stream(&out, &lw);
    close_stream(&errs, &lw);
    ws.restarts++;
    write_workload(tdfd, &ws);
    if (mono_ms() - t0 >= 10000) backoff = 100;
    for (long long until = mono_ms() + backoff; mono_ms() < until && !stop_requested(tdfd);) {
      struct timespec t = {0, 20 * 1000000};
      nanosleep(&t, NULL);
    }
    backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
    if (stop_requested(tdfd) || !state_running(s)) break;
  }
  unlinkat(tdfd, "monitor.pid", 0);
  /* --rm: the command ended by itself, so the tenant goes, as docker run -d --rm does (a stop from outside removes
   * it in `velo sandbox stop`, once the stop is done; rm needs nothing more). The whole rm, as the CLI does it: its
   * native path or Node's. */
  if (auto_remove_now) {
    /* `velo sandbox wait` callers registered in waiters/ read the exit first (up to 10 s; a dead one does not count) */
    for (long long until = mono_ms() + 10000; mono_ms() < until && waiters_alive(tdfd);) {
      struct timespec t = {0, 10 * 1000000};
      nanosleep(&t, NULL);
    }
    char velo[4200];
    snprintf(velo, sizeof velo, "%s/bin/velo", ctx->pkgroot);
    execl(velo, "velo", "sandbox", "rm", "-f", "--home", home, s->name, (char *)NULL);
  }
  _exit(0);
}

/* The monitor's fds after its exec: where the boot waits for "ok" (or the first start's error), the tenant's dir,
 * and a pipe with the tenant's state as the boot holds it (pid and start time included, which state.json may not
 * have yet). */
enum { MON_FD_REPORT = 3, MON_FD_TENANT = 4, MON_FD_STATE = 5 };

int sb_monitor_start(const struct front_ctx *ctx, const char *home, struct tstate *s, char *err, size_t errlen) {
  (void)ctx; /* the monitor reads its plan (the main command) from state.json, as the boot did */
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/tenants/%s", home, s->name);
  char *text = NULL;
  size_t tlen = 0;
  if (state_format(s, &text, &tlen) < 0) return snprintf(err, errlen, "out of memory"), -1;
  /* the state goes through a pipe written before the exec: it must fit the pipe's buffer (a state is a few KiB) */
  if (tlen > 60000) return free(text), snprintf(err, errlen, "the state of sandbox %s is too large for its monitor", s->name), -1;
  int tdfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (tdfd < 0) return free(text), snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno)), -1;
  int rp[2], sp[2];
  if (pipe2(rp, O_CLOEXEC) < 0) return free(text), close(tdfd), snprintf(err, errlen, "pipe: %s", strerror(errno)), -1;
  if (pipe2(sp, O_CLOEXEC) < 0) return free(text), close(tdfd), close(rp[0]), close(rp[1]), snprintf(err, errlen, "pipe: %s", strerror(errno)), -1;
  if (write_all(sp[1], text, tlen) < 0) {
    free(text), close(tdfd), close(rp[0]), close(rp[1]), close(sp[0]), close(sp[1]);
    return snprintf(err, errlen, "cannot hand the state to the monitor: %s", strerror(errno)), -1;
  }
  free(text);
  close(sp[1]);
  pid_t pid = fork();
  if (pid < 0) return close(tdfd), close(rp[0]), close(rp[1]), close(sp[0]), snprintf(err, errlen, "fork: %s", strerror(errno)), -1;
  if (pid == 0) {
    close(rp[0]);
    setsid();
    /* nothing of the caller's stays open: its pipes (Node's spawnSync waits for them), locks, databases; the three
     * fds the monitor needs go to fixed numbers (moved above them first, so no dup2 overwrites another) */
    int keep[3] = {fcntl(rp[1], F_DUPFD_CLOEXEC, 10), fcntl(tdfd, F_DUPFD_CLOEXEC, 10), fcntl(sp[0], F_DUPFD_CLOEXEC, 10)};
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (keep[0] < 0 || keep[1] < 0 || keep[2] < 0 || null < 0) _exit(1);
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    if (dup2(keep[0], MON_FD_REPORT) < 0 || dup2(keep[1], MON_FD_TENANT) < 0 || dup2(keep[2], MON_FD_STATE) < 0) _exit(1);
    for (int fd = 6; fd < 1024; fd++) close(fd);
    unsigned long long start = 0;
    proc_starttime(getpid(), &start, NULL);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%d %llu\n", (int)getpid(), start);
    int fd = openat(MON_FD_TENANT, "monitor.pid", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      write_all(fd, buf, (size_t)n);
      close(fd);
    }
    /* a fresh image of the binary rather than the boot's copy: the boot's heap and stack (the parsed bundle, the
     * runtime's buffers) would otherwise stay this long-lived process's private memory, about 0.5 MiB a tenant */
    char *const args[] = {"velo", "__monitor", (char *)home, s->name, NULL};
    execv("/proc/self/exe", args);
    dprintf(MON_FD_REPORT, "cannot start the workload monitor: %s", strerror(errno));
    _exit(1);
  }
  close(rp[1]);
  close(tdfd);
  close(sp[0]);
  char msg[2048];
  size_t got = 0;
  ssize_t r;
  while (got < sizeof msg - 1 && ((r = read(rp[0], msg + got, sizeof msg - 1 - got)) > 0 || (r < 0 && errno == EINTR)))
    if (r > 0) got += (size_t)r;
  close(rp[0]);
  msg[got] = 0;
  if (!strcmp(msg, "ok")) return 0;
  waitpid(pid, NULL, 0);
  snprintf(err, errlen, "%s", got ? msg : "the workload monitor exited at start");
  return -1;
}

int monitor_main(const struct front_ctx *ctx, int argc, char **argv) {
  if (argc != 2) return 2;
  const char *home = argv[0], *name = argv[1];
  for (int fd = MON_FD_REPORT; fd <= MON_FD_STATE; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      char *n = realloc(text, cap = cap ? cap * 2 : 8192);
      if (!n) break;
      text = n;
    }
    ssize_t r = read(MON_FD_STATE, text + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(MON_FD_STATE);
  static struct tstate s;
  static struct workload w;
  if (!text || (text[len] = 0, state_parse(text, name, &s)) != STATE_OK) {
    dprintf(MON_FD_REPORT, "the workload monitor cannot read the state of sandbox %s", name);
    return 1;
  }
  free(text);
  if (workload_read(home, name, &w) != 1) {
    dprintf(MON_FD_REPORT, "the main command in %s/tenants/%s/state.json is malformed", home, name);
    return 1;
  }
  sb_rt_root(home);
  monitor_run(ctx, home, &s, &w, MON_FD_REPORT, MON_FD_TENANT);
  return 0;
}

int sb_monitor_wait(const char *home, const char *name, int timeout_ms) {
  char p[4300], buf[64];
  snprintf(p, sizeof p, "%s/tenants/%s/monitor.pid", home, name);
  int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  int pid = 0;
  unsigned long long want = 0, start = 0;
  char state;
  if (sscanf(buf, "%d %llu", &pid, &want) != 2 || pid <= 0 || pid == getpid()) return 0;
  int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (pfd < 0) return 0;
  if (proc_starttime((pid_t)pid, &start, &state) < 0 || start != want || state == 'Z') return close(pfd), 0;
  struct pollfd pf = {.fd = pfd, .events = POLLIN};
  int r;
  do r = poll(&pf, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  close(pfd);
  return r > 0 ? 0 : -1;
}
