/* velo-runtime exec [--process F | ID CMD...]: run one more process in a running container (exec.c); without
 * --detach it waits for it, passing signals on, and exits with its code. */
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "rt.h"
#include "../common/ttyrelay.h"

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
  json_object *pj = process ? read_process(process, &e) : process_from_args(c.config, argv + rest, argc - rest, cwd, envs, n_env, user, tty, &e);
  if (!pj) return rt_verr(&e);
  if (!process && argc - rest < 1) return rt_err("exec: needs --process F or a command after the container id");
  if (nnp) json_object_object_add(pj, "noNewPrivileges", json_object_new_boolean(true));
  if (detach && !console_socket && json_object_get_boolean(cfg_get(pj, "terminal")))
    return rt_err("exec: a detached process with a terminal needs --console-socket");
  int relay_sock = -1, code = 1;
  pid_t child;
  struct exec_opts xo = {.console_socket = console_socket, .preserve_fds = preserve_fds, .relay_sock = &relay_sock};
  if (container_exec(&c, pj, &xo, &child, &code, &e) < 0) return rt_verr(&e), code;
  if (pid_file && write_pid_file(pid_file, child, &e) < 0) return kill(child, SIGKILL), rt_verr(&e);
  if (detach) return 0;
  if (relay_sock >= 0) {
    int master = console_recv(relay_sock, &e);
    close(relay_sock);
    if (master < 0) return kill(child, SIGKILL), rt_verr(&e);
    return tty_relay(master, child, PROC_FORWARD, PROC_N_FORWARD);
  }
  sigset_t set;
  proc_forward_set(&set);
  return proc_wait_forwarding(child, &set);
}
