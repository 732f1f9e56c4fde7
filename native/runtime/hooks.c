/* hooks: prestart / createRuntime / poststart / poststop run in the runtime's namespaces, createContainer /
 * startContainer in the container's. Each gets the container's state on stdin; a hook that exits non-zero, or
 * outlives its timeout (then it is killed), fails the operation — except poststop and poststart failures, which
 * the spec says only warn (poststart: the container is already running). */
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "rt.h"

static const char *const KINDS[] = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop", NULL};

int hooks_validate(json_object *hooks, struct velo_err *e) {
  if (!hooks) return 0;
  if (cfg_only_keys(hooks, "hooks", KINDS, e) < 0) return -1;
  for (int k = 0; KINDS[k]; k++) {
    json_object *arr;
    int r = cfg_arr(hooks, KINDS[k], "hooks", &arr, e);
    if (r < 0) return -1;
    for (size_t i = 0; r == 0 && i < json_object_array_length(arr); i++) {
      json_object *h = json_object_array_get_idx(arr, i);
      char w[64];
      snprintf(w, sizeof w, "hooks.%s[%zu]", KINDS[k], i);
      static const char *const keys[] = {"path", "args", "env", "timeout", NULL};
      const char *path = NULL;
      int64_t timeout = 0;
      json_object *a;
      if (cfg_only_keys(h, w, keys, e) < 0 || cfg_str(h, "path", w, &path, e) < 0 || cfg_i64(h, "timeout", w, &timeout, e) < 0) return -1;
      if (!path || path[0] != '/') return cfg_fail(e, w, "path", "required, an absolute path");
      if (cfg_get(h, "timeout") && timeout <= 0) return cfg_fail(e, w, "timeout", "must be greater than zero");
      for (const char *key = "args"; key; key = strcmp(key, "args") ? NULL : "env") {
        if ((r = cfg_arr(h, key, w, &a, e)) < 0) return -1;
        for (size_t j = 0; r == 0 && j < json_object_array_length(a); j++)
          if (!json_object_is_type(json_object_array_get_idx(a, j), json_type_string)) return cfg_fail(e, w, key, "expected strings");
      }
      r = 0;
    }
  }
  return 0;
}

static char **strings(json_object *arr, const char *fallback) {
  size_t n = arr ? json_object_array_length(arr) : 0;
  char **v = calloc(n + 2, sizeof *v);
  if (!v) return NULL;
  for (size_t i = 0; i < n; i++) v[i] = (char *)json_object_get_string(json_object_array_get_idx(arr, i));
  if (!n && fallback) v[0] = (char *)fallback;
  return v;
}

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int run_one(json_object *h, const char *what, const char *state_json, struct velo_err *e) {
  const char *path = json_object_get_string(cfg_get(h, "path"));
  int64_t timeout = 0;
  json_object *t = cfg_get(h, "timeout");
  if (t) timeout = json_object_get_int64(t);
  cleanup_free char **argv = strings(cfg_get(h, "args"), path);
  cleanup_free char **envp = strings(cfg_get(h, "env"), NULL);
  if (!argv || !envp) return velo_fail(e, ENOMEM, "%s", what);
  int in[2], err[2];
  if (pipe2(in, O_CLOEXEC) < 0) return VELO_FAIL_ERRNO(e, "%s: pipe", what);
  if (pipe2(err, O_CLOEXEC) < 0) {
    close(in[0]), close(in[1]);
    return VELO_FAIL_ERRNO(e, "%s: pipe", what);
  }
  pid_t pid = fork();
  if (pid < 0) return VELO_FAIL_ERRNO(e, "%s: fork", what);
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(err[1], 2);
    /* a hook's stdout is not ours to pass on (create's stdout may be the container's): it goes to stderr too */
    dup2(err[1], 1);
    execve(path, argv, envp);
    dprintf(2, "exec %s: %s", path, strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(err[1]);
  /* the state is small (< pipe buffer): write it and close, so the hook sees EOF */
  signal(SIGPIPE, SIG_IGN);
  write_all(in[1], state_json, strlen(state_json));
  close(in[1]);
  cleanup_fd int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
  char out[2048];
  size_t got = 0;
  long deadline = timeout > 0 ? now_ms() + timeout * 1000 : -1;
  bool timed_out = false, err_open = true;
  for (;;) {
    struct pollfd p[2] = {{.fd = err_open ? err[0] : -1, .events = POLLIN}, {.fd = pfd, .events = POLLIN}};
    int wait = deadline < 0 ? -1 : (int)(deadline - now_ms());
    if (deadline >= 0 && wait <= 0) {
      timed_out = true;
      break;
    }
    int r = poll(p, 2, wait);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      timed_out = true;
      break;
    }
    if (p[0].revents) {
      char tmp[512];
      ssize_t n = read(err[0], tmp, sizeof tmp);
      if (n <= 0) err_open = false;
      else {
        size_t k = (size_t)n < sizeof out - 1 - got ? (size_t)n : sizeof out - 1 - got;
        memcpy(out + got, tmp, k);
        got += k;
      }
    }
    if ((p[1].revents & POLLIN) && !err_open) break;
    if ((p[1].revents & POLLIN) && err_open) {
      /* exited: drain what is left without blocking on a grandchild that kept the pipe */
      struct pollfd q = {.fd = err[0], .events = POLLIN};
      if (poll(&q, 1, 50) <= 0) break;
    }
  }
  close(err[0]);
  out[got] = 0;
  while (got && (out[got - 1] == '\n' || out[got - 1] == '\r')) out[--got] = 0;
  if (timed_out) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return velo_fail(e, 0, "%s %s timed out after %llds%s%s", what, path, (long long)timeout, got ? ": " : "", out);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return VELO_FAIL_ERRNO(e, "%s %s: wait", what, path);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  if (WIFEXITED(st)) return velo_fail(e, 0, "%s %s exited with status %d%s%s", what, path, WEXITSTATUS(st), got ? ": " : "", out);
  return velo_fail(e, 0, "%s %s was killed by signal %d%s%s", what, path, WTERMSIG(st), got ? ": " : "", out);
}

int hooks_run(json_object *config, const char *kind, const char *state_json, struct velo_err *e) {
  json_object *arr = cfg_get(cfg_get(config, "hooks"), kind);
  /* poststart and poststop: the container already runs (or is gone), so a failure is a warning and the
   * remaining hooks still run (spec); every other kind stops at its first failure */
  bool warn_only = !strcmp(kind, "poststart") || !strcmp(kind, "poststop");
  for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
    char what[64];
    snprintf(what, sizeof what, "%s hook", kind);
    if (run_one(json_object_array_get_idx(arr, i), what, state_json, e) < 0) {
      if (!warn_only) return -1;
      rt_log("warning", "%s", e->msg);
      fprintf(stderr, "velo-runtime: warning: %s\n", e->msg);
    }
  }
  return 0;
}
