/* The state dir of a container: <root>/<id>/ holds state.json (the runtime's own record), config.json (the
 * config as it was at create: later verbs read hooks and the process defaults from it, never from the bundle,
 * which the engine may change or remove) and exec.fifo while the container is created but not started. */
#include <dirent.h>
#include <poll.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "rt.h"


int container_id_check(const char *id, struct velo_err *e) {
  /* runc's rule: word characters, '+', '-', '.'; never "." or ".." (the id is a path component under --root) */
  size_t n = strlen(id);
  if (!n || n > 1024 || !strcmp(id, ".") || !strcmp(id, ".."))
    return velo_fail(e, 0, "invalid container id \"%s\": 1 to 1024 of letters, digits, '_', '+', '-', '.', and not . or ..", id);
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("_+-.", *p)))
      return velo_fail(e, 0, "invalid container id \"%s\": only letters, digits, '_', '+', '-', '.' are allowed", id);
  return 0;
}

static int mkdir_p(const char *path, mode_t mode, struct velo_err *e) {
  char buf[4096];
  if (strlen(path) >= sizeof buf) return velo_fail(e, ENAMETOOLONG, "%s", path);
  strcpy(buf, path);
  for (char *s = buf + 1;; s++) {
    if (*s != '/' && *s) continue;
    char c = *s;
    *s = 0;
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return VELO_FAIL_ERRNO(e, "mkdir %s", buf);
    if (!c) break;
    *s = c;
  }
  struct stat st;
  if (stat(path, &st) < 0) return VELO_FAIL_ERRNO(e, "--root %s", path);
  if (!S_ISDIR(st.st_mode)) return velo_fail(e, ENOTDIR, "--root %s", path);
  return 0;
}

int container_dir(const char *id, char **dir, struct velo_err *e) {
  if (container_id_check(id, e) < 0) return -1;
  if (mkdir_p(G.root, 0700, e) < 0) return -1;
  if (asprintf(dir, "%s/%s", G.root, id) < 0) return velo_fail(e, ENOMEM, "state dir");
  return 0;
}

int container_write_file(const char *dir, const char *name, const char *data, size_t len, struct velo_err *e) {
  char tmp[4200], dst[4200];
  snprintf(tmp, sizeof tmp, "%s/.%s.%d", dir, name, (int)getpid());
  snprintf(dst, sizeof dst, "%s/%s", dir, name);
  cleanup_fd int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "write %s", tmp);
  if (write_all(fd, data, len) < 0) {
    int err = errno;
    unlink(tmp);
    return velo_fail(e, err, "write %s", tmp);
  }
  if (rename(tmp, dst) < 0) {
    int err = errno;
    unlink(tmp);
    return velo_fail(e, err, "rename %s", dst);
  }
  return 0;
}


int write_pid_file(const char *path, pid_t pid, struct velo_err *e) {
  /* containerd and conmon read it as soon as the verb returns: write it whole (temp + rename) */
  char tmp[4200], num[32];
  snprintf(tmp, sizeof tmp, "%s.velo-tmp", path);
  int n = snprintf(num, sizeof num, "%d", (int)pid);
  cleanup_fd int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "--pid-file %s", path);
  if (write_all(fd, num, (size_t)n) < 0 || rename(tmp, path) < 0) {
    int err = errno;
    unlink(tmp);
    return velo_fail(e, err, "--pid-file %s", path);
  }
  return 0;
}

static json_object *read_json(const char *dir, const char *name, struct velo_err *e) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  cleanup_fd int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "read %s", path), NULL;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) return velo_fail(e, EINVAL, "read %s: not a regular file of sane size", path), NULL;
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) return velo_fail(e, ENOMEM, "read %s", path), NULL;
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  buf[got] = 0;
  json_tokener *tok = json_tokener_new();
  json_object *j = tok ? json_tokener_parse_ex(tok, buf, (int)got) : NULL;
  enum json_tokener_error je = tok ? json_tokener_get_error(tok) : json_tokener_error_depth;
  if (j && tok && (size_t)json_tokener_get_parse_end(tok) != got) {
    json_object_put(j);
    j = NULL;
    je = json_tokener_error_parse_unexpected;
  }
  if (tok) json_tokener_free(tok);
  free(buf);
  if (!j) return velo_fail(e, 0, "read %s: not valid JSON (%s)", path, json_tokener_error_desc(je)), NULL;
  return j;
}

json_object *config_read(const char *path_dir, struct velo_err *e) { return read_json(path_dir, "config.json", e); }

int container_load(const char *id, struct container *c, struct velo_err *e) {
  memset(c, 0, sizeof *c);
  if (container_dir(id, &c->dir, e) < 0) return -1;
  c->id = strdup(id);
  struct stat st;
  if (lstat(c->dir, &st) < 0) {
    if (errno == ENOENT) return velo_fail(e, 0, "container %s does not exist", id), 1;
    return VELO_FAIL_ERRNO(e, "container %s", id);
  }
  if (!S_ISDIR(st.st_mode)) return velo_fail(e, 0, "container %s: %s is not a directory", id, c->dir);
  c->state = read_json(c->dir, "state.json", e);
  if (!c->state) return -1;
  c->config = read_json(c->dir, "config.json", e);
  if (!c->config) return -1;
  int64_t pid = 0;
  const char *start = NULL;
  if (cfg_i64(c->state, "pid", "state", &pid, e) < 0 || cfg_str(c->state, "pidStart", "state", &start, e) < 0) return -1;
  if (pid < 0 || pid > 4194304) return velo_fail(e, 0, "container %s: state.json: bad pid", id);
  c->pid = (pid_t)pid;
  c->pid_start = start ? strtoull(start, NULL, 10) : 0;
  json_object *cg = cfg_get(c->state, "cgroup");
  if (cg) {
    if (oci_cgroup_from_json(cg, &c->cg, e) < 0) return -1;
    c->has_cg = true;
  }
  return 0;
}

int container_save(struct container *c, struct velo_err *e) {
  json_object_object_add(c->state, "pid", json_object_new_int64(c->pid));
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", c->pid_start);
  json_object_object_add(c->state, "pidStart", json_object_new_string(buf));
  const char *s = json_object_to_json_string_ext(c->state, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  return container_write_file(c->dir, "state.json", s, strlen(s), e);
}

bool container_alive(const struct container *c) {
  if (c->pid <= 0) return false;
  unsigned long long st;
  char state;
  return proc_starttime(c->pid, &st, &state) == 0 && st == c->pid_start && state != 'Z' && state != 'X';
}

const char *container_status(const struct container *c) {
  if (c->pid <= 0) return "creating";
  if (!container_alive(c)) return "stopped";
  char fifo[4200];
  snprintf(fifo, sizeof fifo, "%s/exec.fifo", c->dir);
  if (access(fifo, F_OK) == 0) return "created";
  if (c->has_cg && oci_cgroup_frozen(&c->cg)) return "paused";
  return "running";
}

char *container_state_json(const struct container *c, const char *status_override) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "ociVersion", json_object_new_string(RT_SPEC_VERSION));
  json_object_object_add(o, "id", json_object_new_string(c->id));
  const char *status = status_override ? status_override : container_status(c);
  json_object_object_add(o, "status", json_object_new_string(status));
  if (strcmp(status, "stopped") && c->pid > 0) json_object_object_add(o, "pid", json_object_new_int64(c->pid));
  else json_object_object_add(o, "pid", json_object_new_int(0));
  json_object *v;
  if (json_object_object_get_ex(c->state, "bundle", &v)) json_object_object_add(o, "bundle", json_object_get(v));
  if (json_object_object_get_ex(c->state, "rootfs", &v)) json_object_object_add(o, "rootfs", json_object_get(v));
  if (json_object_object_get_ex(c->state, "created", &v)) json_object_object_add(o, "created", json_object_get(v));
  json_object_object_add(o, "owner", json_object_new_string(""));
  json_object *ann = cfg_get(c->config, "annotations");
  if (ann) json_object_object_add(o, "annotations", json_object_get(ann));
  char *out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
  return out;
}

void container_free(struct container *c) {
  free(c->id);
  free(c->dir);
  if (c->state) json_object_put(c->state);
  if (c->config) json_object_put(c->config);
  if (c->has_cg) oci_cgroup_free(&c->cg);
  memset(c, 0, sizeof *c);
}



int container_signal(const struct container *c, int sig, struct velo_err *e) {
  if (c->pid <= 0) return velo_fail(e, ESRCH, "container %s has no process yet", c->id);
  cleanup_fd int pfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
  unsigned long long st;
  char state;
  /* the pidfd pins the process: if the start time still matches, the signal cannot reach a reused pid */
  if (pfd < 0 || proc_starttime(c->pid, &st, &state) < 0 || st != c->pid_start || state == 'Z')
    return velo_fail(e, ESRCH, "container %s is not running", c->id);
  if (syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) < 0) return VELO_FAIL_ERRNO(e, "signal %d to container %s (pid %d)", sig, c->id, (int)c->pid);
  return 0;
}

static const struct {
  const char *name;
  int sig;
} SIGNALS[] = {
    {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL}, {"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"IOT", SIGIOT},
    {"BUS", SIGBUS}, {"FPE", SIGFPE}, {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},
    {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO}, {"POLL", SIGPOLL},
    {"PWR", SIGPWR}, {"SYS", SIGSYS},
};

int parse_signal(const char *s, int *sig) {
  char *end;
  long n = strtol(s, &end, 10);
  if (*s && !*end) {
    if (n < 1 || n > SIGRTMAX) return -1;
    *sig = (int)n;
    return 0;
  }
  if (!strncasecmp(s, "SIG", 3)) s += 3;
  for (size_t i = 0; i < sizeof SIGNALS / sizeof *SIGNALS; i++)
    if (!strcasecmp(s, SIGNALS[i].name)) {
      *sig = SIGNALS[i].sig;
      return 0;
    }
  if (!strncasecmp(s, "RTMIN", 5) || !strncasecmp(s, "RTMAX", 5)) {
    int base = !strncasecmp(s, "RTMIN", 5) ? SIGRTMIN : SIGRTMAX;
    const char *r = s + 5;
    long off = 0;
    if (*r) {
      off = strtol(r, &end, 10);
      if (*end) return -1;
    }
    int v = base + (int)off;
    if (v < SIGRTMIN || v > SIGRTMAX) return -1;
    *sig = v;
    return 0;
  }
  return -1;
}

int container_kill(const char *id, int sig, bool all, struct velo_err *e) {
  struct container c;
  int r = container_load(id, &c, e);
  if (r == 0) {
    const char *status = container_status(&c);
    if (!strcmp(status, "stopped") || !strcmp(status, "creating")) r = velo_fail(e, 0, "cannot kill container %s: it is %s, not running", c.id, status);
    /* with SIGKILL kill_all waits for the cgroup to empty: give it time, or `kill --all ID KILL` fails although every process got the signal */
    else if (all && c.has_cg) r = oci_cgroup_kill_all(&c.cg, sig, 5000, e);
    else r = container_signal(&c, sig, e);
  }
  container_free(&c);
  return r ? -1 : 0;
}

int container_freeze(const char *id, bool frozen, struct velo_err *e) {
  struct container c;
  int r = container_load(id, &c, e) == 0 ? 0 : -1; /* 1 from the load: it does not exist, an error here */
  if (r == 0) {
    const char *status = container_status(&c);
    if (!strcmp(status, frozen ? "paused" : "running")) r = 1;
    else if (strcmp(status, frozen ? "running" : "paused"))
      r = velo_fail(e, 0, "cannot %s container %s: it is %s", frozen ? "pause" : "resume", c.id, status);
    else if (!c.has_cg) r = velo_fail(e, 0, "container %s has no cgroup recorded", c.id);
    else r = oci_cgroup_freeze(&c.cg, frozen, e);
  }
  container_free(&c);
  return r;
}

int container_wait_exit(const struct container *c, int timeout_ms) {
  int pfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
  if (pfd < 0) return 0; /* gone already */
  struct pollfd p = {.fd = pfd, .events = POLLIN};
  int r;
  do r = poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  close(pfd);
  return r > 0 ? 0 : -1;
}
