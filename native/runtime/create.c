/* create: validate the whole config.json first (nothing is changed before every field is known to be
 * honoured), then claim the state dir, make the cgroup, clone the container's process into its new
 * namespaces and walk it through its set-up with the parent over a SEQPACKET socket:
 *
 *   child                                   parent (velo-runtime create)
 *   [new user ns] "M" ──────────────────►   write uid_map/gid_map, "m"
 *   join ns by path, cgroup, cgroup ns,
 *   sysctl, hostname, lo, mounts
 *   "H" ────────────────────────────────►   prestart + createRuntime hooks, "g" + state
 *   createContainer hooks, pivot_root,
 *   console, rlimits, find the program,
 *   user, caps, no_new_privs, seccomp
 *   "R" ────────────────────────────────►   record pid + start time in state.json, --pid-file, exit 0
 *   block reading exec.fifo ◄─────────────  `start` writes the state there
 *   startContainer hooks, execve
 *
 * Any failure is sent as "E" + message; the parent kills the child and removes everything it made (state dir,
 * cgroup). If the parent itself is killed (kill -9 at any point), the child sees EOF on the socket and exits,
 * and `delete --force` removes the rest: state.json is written before anything else is made. */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/keyctl.h>

#include "rt.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

struct child_ctx {
  const struct create_opts *o;
  json_object *config;
  struct ns_plan *ns;
  struct proc_plan *pp;
  struct oci_seccomp *sc;
  struct oci_cgroup *cg;
  const char *bundle, *rootfs, *hostname, *domainname;
  json_object *sysctl;
  long persona;
  int sync, fifo, console;
  bool born_in_cg; /* born in its v2 cgroup (oci_cgroup_clone) */
};

/* ---- linux.sysctl: only what a namespace of the container's own isolates (as runc checks) */
static int sysctl_validate(json_object *linux_, const struct ns_plan *ns, json_object **out, struct velo_err *e) {
  int r = cfg_obj(linux_, "sysctl", "linux", out, e);
  if (r != 0) return r < 0 ? -1 : 0;
  json_object_object_foreach(*out, key, val) {
    char where[300];
    snprintf(where, sizeof where, "linux.sysctl");
    if (!json_object_is_type(val, json_type_string)) return cfg_fail(e, where, key, "expected a string");
    if (strstr(key, "..") || strchr(key, '/') == key || !*key) return cfg_fail(e, where, key, "invalid name");
    bool ipc = !strncmp(key, "fs.mqueue.", 10) || !strcmp(key, "kernel.msgmax") || !strcmp(key, "kernel.msgmnb") || !strcmp(key, "kernel.msgmni") ||
               !strcmp(key, "kernel.sem") || !strcmp(key, "kernel.shmall") || !strcmp(key, "kernel.shmmax") || !strcmp(key, "kernel.shmmni") ||
               !strcmp(key, "kernel.shm_rmid_forced");
    bool net = !strncmp(key, "net.", 4);
    bool uts = !strcmp(key, "kernel.hostname") || !strcmp(key, "kernel.domainname");
    if (ipc && !ns->listed[NS_IPC]) return cfg_fail(e, where, key, "needs an ipc namespace of the container's own");
    if (net && !ns->listed[NS_NET]) return cfg_fail(e, where, key, "needs a network namespace of the container's own");
    if (uts && !ns->listed[NS_UTS]) return cfg_fail(e, where, key, "needs a uts namespace of the container's own");
    if (!ipc && !net && !uts) return cfg_fail(e, where, key, "not a namespaced sysctl: it would change the host");
  }
  return 0;
}

static int sysctl_apply(json_object *sysctl, struct velo_err *e) {
  if (!sysctl) return 0;
  json_object_object_foreach(sysctl, key, val) {
    char path[512];
    int n = snprintf(path, sizeof path, "/proc/sys/%s", key);
    for (char *p = path + 10; p < path + n; p++)
      if (*p == '.') *p = '/';
    /* /proc/sys resolves against the writer's own namespaces: the child is already in the container's */
    cleanup_fd int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    const char *v = json_object_get_string(val);
    if (fd < 0 || write_all(fd, v, strlen(v)) < 0) return VELO_FAIL_ERRNO(e, "config.json: linux.sysctl.%s", key);
  }
  return 0;
}

static int personality_validate(json_object *linux_, long *persona, struct velo_err *e) {
  json_object *p;
  *persona = -1;
  int r = cfg_obj(linux_, "personality", "linux", &p, e);
  if (r != 0) return r < 0 ? -1 : 0;
  static const char *const keys[] = {"domain", "flags", NULL};
  const char *dom = NULL;
  json_object *fl;
  if (cfg_only_keys(p, "linux.personality", keys, e) < 0 || cfg_str(p, "domain", "linux.personality", &dom, e) < 0 ||
      cfg_arr(p, "flags", "linux.personality", &fl, e) < 0)
    return -1;
  if (fl && json_object_array_length(fl)) return cfg_fail(e, "linux.personality", "flags", "not supported by velo-runtime");
  if (!dom || !strcmp(dom, "LINUX")) *persona = PER_LINUX;
  else if (!strcmp(dom, "LINUX32")) *persona = PER_LINUX32;
  else return cfg_fail(e, "linux.personality", "domain", "expected LINUX or LINUX32, got \"%s\"", dom);
  return 0;
}

/* ---- the child */
static void child_fail(int sync, const struct velo_err *e) __attribute__((noreturn));
static void child_fail(int sync, const struct velo_err *e) {
  char msg[sizeof e->msg + 2];
  int n = snprintf(msg, sizeof msg, "E%s", e->msg[0] ? e->msg : "container set-up failed");
  if (send(sync, msg, (size_t)n, MSG_NOSIGNAL) < 0) {
  }
  _exit(1);
}

/* wait for the parent's reply that starts with `want`; its payload (malloc'd) in *payload */
static int child_wait(int sync, char want, char **payload, struct velo_err *e) {
  char *buf = malloc(1 << 20);
  if (!buf) return velo_fail(e, ENOMEM, "sync");
  ssize_t n;
  do n = recv(sync, buf, (1 << 20) - 1, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0 || buf[0] != want) {
    free(buf);
    /* the parent went away (killed, or it failed and will clean up): stop here */
    _exit(1);
  }
  buf[n] = 0;
  if (payload) *payload = buf;
  else free(buf);
  return 0;
}

/* 'm' with the idmapped mounts the parent made: payload "m" + "I," per mount index I, one fd per index in
 * SCM_RIGHTS, in that order. */
static int send_mount_fds(int sync, const int *fds, size_t n) {
  char payload[4096] = "m";
  size_t pl = 1, k = 0;
  int *valid = calloc(n ? n : 1, sizeof *valid);
  if (!valid) return -1;
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0 && pl + 24 < sizeof payload && k < 250) {
      pl += (size_t)snprintf(payload + pl, sizeof payload - pl, "%zu,", i);
      valid[k++] = fds[i];
    }
  struct iovec io = {.iov_base = payload, .iov_len = pl};
  char cbuf[CMSG_SPACE(250 * sizeof(int))];
  struct msghdr msg = {.msg_iov = &io, .msg_iovlen = 1};
  if (k) {
    msg.msg_control = cbuf;
    msg.msg_controllen = CMSG_SPACE(k * sizeof(int));
    struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(k * sizeof(int));
    memcpy(CMSG_DATA(h), valid, k * sizeof(int));
  }
  ssize_t w = sendmsg(sync, &msg, MSG_NOSIGNAL);
  free(valid);
  return w < 0 ? -1 : 0;
}

/* The child's side: prepared[] (per mount index, -1 where none) from an 'm' message; exits if the parent is gone. */
static void recv_mount_fds(int sync, int *prepared, size_t n) {
  for (size_t i = 0; i < n; i++) prepared[i] = -1;
  char payload[4096];
  char cbuf[CMSG_SPACE(250 * sizeof(int))];
  struct iovec io = {.iov_base = payload, .iov_len = sizeof payload - 1};
  struct msghdr msg = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  ssize_t r;
  do r = recvmsg(sync, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r <= 0 || payload[0] != 'm') _exit(1);
  payload[r] = 0;
  int got[250];
  size_t ng = 0;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h))
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
      size_t c = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      if (c > 250 - ng) c = 250 - ng;
      memcpy(got + ng, CMSG_DATA(h), c * sizeof(int));
      ng += c;
    }
  size_t k = 0;
  for (char *p = payload + 1; *p && k < ng;) {
    char *end;
    unsigned long i = strtoul(p, &end, 10);
    if (end == p || *end != ',') break;
    if (i < n) prepared[i] = got[k];
    k++;
    p = end + 1;
  }
}

/* close fds lo..hi (close_range(2), or one by one on a kernel without it) */
static void close_fds(unsigned lo, unsigned hi) {
  if (lo > hi || syscall(SYS_close_range, lo, hi, 0) == 0) return;
  long max = sysconf(_SC_OPEN_MAX);
  for (long fd = lo; fd <= (long)hi && fd < (max > 0 ? max : 65536); fd++) close((int)fd);
}

/* close every fd from `from` on but the two kept (either may be -1) */
static void close_from_except(int from, int keep_a, int keep_b) {
  int lo = keep_a < keep_b ? keep_a : keep_b, hi = keep_a < keep_b ? keep_b : keep_a;
  int next = from;
  for (int k = 0; k < 2; k++) {
    int keep = k ? hi : lo;
    if (keep < next) continue;
    if (keep > next) close_fds((unsigned)next, (unsigned)keep - 1);
    next = keep + 1;
  }
  close_fds((unsigned)next, ~0U);
}

static void child_main(struct child_ctx *x) __attribute__((noreturn));
static void child_main(struct child_ctx *x) {
  struct velo_err e = {0};
  int sync = x->sync;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (x->o->null_stdio) {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) VELO_FAIL_ERRNO(&e, "/dev/null as stdio"), child_fail(sync, &e);
    close(null);
  }
  /* `run` blocks the signals it forwards before it clones us, and callers may ignore some: start clean */
  proc_reset_signals();
  json_object *mounts = cfg_get(x->config, "mounts");
  size_t nm = mounts ? json_object_array_length(mounts) : 0;
  int *prepared = calloc(nm ? nm : 1, sizeof *prepared);
  if (!prepared) _exit(1);
  for (size_t i = 0; i < nm; i++) prepared[i] = -1;
  /* its cgroups, before anything else: the v1 hierarchies by itself (through `tasks`, which takes no global lock:
   * cgroup.c), with a new user namespace before it has maps — until then its ids are still the caller's on the host;
   * once mapped, the host's cgroup files are not its to write. The v2 one, unless it was born there: by itself
   * without a new user namespace, else by the parent while it writes the maps. */
  bool v2_by_itself = !x->born_in_cg && !(x->ns->clone_flags & CLONE_NEWUSER);
  if (oci_cgroup_join(x->cg, 0, CG_V1 | (v2_by_itself ? CG_V2 : 0), &e) < 0) child_fail(sync, &e);
  if (x->ns->clone_flags & CLONE_NEWUSER) {
    if (send(sync, "M", 1, MSG_NOSIGNAL) < 0) _exit(1);
    recv_mount_fds(sync, prepared, nm);
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
      VELO_FAIL_ERRNO(&e, "become root in the new user namespace (is container id 0 mapped in linux.uidMappings/gidMappings?)");
      child_fail(sync, &e);
    }
  }
  if (ns_child_join(x->ns, &e) < 0) child_fail(sync, &e);
  if (x->ns->listed[NS_CGROUP] && x->ns->join_fd[NS_CGROUP] < 0 && unshare(CLONE_NEWCGROUP) < 0) {
    VELO_FAIL_ERRNO(&e, "new cgroup namespace");
    child_fail(sync, &e);
  }
  if (sysctl_apply(x->sysctl, &e) < 0) child_fail(sync, &e);
  if (setsid() < 0) VELO_FAIL_ERRNO(&e, "setsid"), child_fail(sync, &e);
  if (x->hostname && sethostname(x->hostname, strlen(x->hostname)) < 0) VELO_FAIL_ERRNO(&e, "config.json: hostname: sethostname"), child_fail(sync, &e);
  if (x->domainname && setdomainname(x->domainname, strlen(x->domainname)) < 0) VELO_FAIL_ERRNO(&e, "config.json: domainname: setdomainname"), child_fail(sync, &e);
  /* a new network namespace gets lo up (as runc); velo's network "none" asks for it left down */
  const char *lo = json_object_get_string(cfg_get(cfg_get(x->config, "annotations"), "org.velo.loopback"));
  if ((x->ns->clone_flags & CLONE_NEWNET) && !(lo && !strcmp(lo, "down")) && loopback_up(&e) < 0) child_fail(sync, &e);
  struct oci_mount_ctx m = {.config = x->config, .bundle = x->bundle, .rootfs = x->rootfs, .cg = x->cg,
                            .userns = x->ns->listed[NS_USER], .new_cgroupns = x->ns->listed[NS_CGROUP] && x->ns->join_fd[NS_CGROUP] < 0,
                            .prepared = prepared, .n_prepared = nm};
  if (oci_mounts_setup(&m, &e) < 0) child_fail(sync, &e);
  if (send(sync, "H", 1, MSG_NOSIGNAL) < 0) _exit(1);
  char *state = NULL;
  child_wait(sync, 'g', &state, &e);
  if (hooks_run(x->config, "createContainer", state + 1, &e) < 0) child_fail(sync, &e);
  free(state);
  if (oci_mounts_finish(&m, x->o->no_pivot, &e) < 0) child_fail(sync, &e);
  /* runc makes process.cwd when it is missing; on a read-only root that can fail, and chdir says so later */
  if (mkdir(x->pp->cwd, 0755) < 0 && errno == ENOENT) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", x->pp->cwd);
    for (char *s = buf + 1; *s; s++)
      if (*s == '/') *s = 0, mkdir(buf, 0755), *s = '/';
    mkdir(buf, 0755);
  }
  if (x->console >= 0) {
    if (console_setup(x->console, x->pp->rows, x->pp->cols, &e) < 0) child_fail(sync, &e);
    close(x->console);
  }
  if (x->persona >= 0 && personality((unsigned long)x->persona) < 0) VELO_FAIL_ERRNO(&e, "config.json: linux.personality"), child_fail(sync, &e);
  if (!x->o->no_new_keyring) {
    /* a session keyring of the container's own, so it never sees the host's keys (ENOSYS/EPERM: no keyrings) */
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS && errno != EPERM && errno != EACCES)
      VELO_FAIL_ERRNO(&e, "new session keyring"), child_fail(sync, &e);
  }
  if (proc_apply_early(x->pp, &e) < 0) child_fail(sync, &e);
  if (proc_default_home(x->pp) < 0) VELO_FAIL_ERRNO(&e, "set HOME"), child_fail(sync, &e);
  char *path = NULL;
  if (proc_find_exec(x->pp, &path, &e) < 0) child_fail(sync, &e);
  /* the container's fds: stdio, --preserve-fds from 3 on; nothing else of ours survives exec */
  syscall(SYS_close_range, 3 + x->o->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
  for (int fd = 3; fd < 3 + x->o->preserve_fds; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && fd != sync && fd != x->fifo) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
  }
  if (proc_finalize(x->pp, x->sc, &e) < 0) child_fail(sync, &e);
  prctl(PR_SET_PDEATHSIG, 0);
  /* Of the caller's fds, only the container's own (--preserve-fds) and exec.fifo stay: the rest are closed now
   * rather than at exec. A created container may wait for `start` for good (its caller killed), and must not hold
   * what the caller held meanwhile: velo's store and sandbox locks are flock(2)s, held by every fd of their open
   * file (an rm -f of such a sandbox waited forever on its own init). Closed before "R", not after: once told, the
   * caller lets its locks go and goes on, and a next call on the sandbox must not find one still held here. */
  close_from_except(3 + x->o->preserve_fds, x->fifo, sync);
  if (send(sync, "R", 1, MSG_NOSIGNAL) < 0) _exit(1);
  close(sync);
  /* created: wait for start. It writes a 4-byte length and the state JSON (for startContainer hooks). */
  uint32_t len = 0;
  size_t got = 0;
  while (got < sizeof len) {
    ssize_t n = read(x->fifo, (char *)&len + got, sizeof len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(1);
    got += (size_t)n;
  }
  if (len > (16 << 20)) _exit(1);
  char *st = malloc((size_t)len + 1);
  if (!st) _exit(1);
  for (got = 0; got < len;) {
    ssize_t n = read(x->fifo, st + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(1);
    got += (size_t)n;
  }
  st[len] = 0;
  /* exec.fifo stays open (close-on-exec) until the execve: `start` waits for it to close before poststart hooks */
  if (hooks_run(x->config, "startContainer", st, &e) < 0) {
    fprintf(stderr, "velo-runtime: %s\n", e.msg);
    _exit(1);
  }
  free(st);
  proc_exec(x->pp, path, &e);
  fprintf(stderr, "velo-runtime: %s\n", e.msg);
  _exit(errno == ENOENT ? 127 : 126);
}

/* ---- validation of the top level */
static int validate_top(json_object *cfg, struct velo_err *e) {
  static const char *const top[] = {"ociVersion", "root", "mounts", "process", "hostname", "domainname", "hooks", "annotations", "linux", NULL};
  if (!json_object_is_type(cfg, json_type_object)) return velo_fail(e, 0, "config.json: expected an object");
  if (cfg_only_keys(cfg, "", top, e) < 0) return -1;
  const char *v = NULL;
  if (cfg_str(cfg, "ociVersion", "", &v, e) < 0) return -1;
  if (!v) return cfg_fail(e, NULL, "ociVersion", "required");
  if (strncmp(v, "1.", 2)) return cfg_fail(e, NULL, "ociVersion", "velo-runtime implements runtime-spec 1.x, not %s", v);
  json_object *ann;
  int r = cfg_obj(cfg, "annotations", "", &ann, e);
  if (r < 0) return -1;
  if (r == 0) {
    json_object_object_foreach(ann, key, val) {
      if (!json_object_is_type(val, json_type_string)) return cfg_fail(e, "annotations", key, "expected a string");
      if (!*key) return cfg_fail(e, "annotations", "", "empty key");
    }
  }
  json_object *linux_;
  if (cfg_obj(cfg, "linux", "", &linux_, e) < 0) return -1;
  static const char *const lk[] = {"namespaces", "uidMappings", "gidMappings", "timeOffsets", "devices", "cgroupsPath", "resources",
                                   "rootfsPropagation", "seccomp", "sysctl", "maskedPaths", "readonlyPaths", "mountLabel", "personality",
                                   "intelRdt", "memoryPolicy", "netDevices", NULL};
  if (cfg_only_keys(linux_, "linux", lk, e) < 0) return -1;
  if (cfg_get(linux_, "intelRdt")) return cfg_fail(e, "linux", "intelRdt", "Intel RDT is not supported by velo-runtime");
  if (cfg_get(linux_, "memoryPolicy")) return cfg_fail(e, "linux", "memoryPolicy", "not supported by velo-runtime");
  json_object *nd = cfg_get(linux_, "netDevices");
  if (nd && (!json_object_is_type(nd, json_type_object) || json_object_object_length(nd)))
    return cfg_fail(e, "linux", "netDevices", "moving network devices into the container is not supported by velo-runtime");
  return hooks_validate(cfg_get(cfg, "hooks"), e);
}

static char *now_rfc3339(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  struct tm tm;
  gmtime_r(&t.tv_sec, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%09ldZ", t.tv_nsec);
  return strdup(buf);
}

static int send_msg(int sync, char tag, const char *payload) {
  size_t n = payload ? strlen(payload) : 0;
  char *buf = malloc(n + 1);
  if (!buf) return -1;
  buf[0] = tag;
  if (n) memcpy(buf + 1, payload, n);
  ssize_t w = send(sync, buf, n + 1, MSG_NOSIGNAL);
  free(buf);
  return w < 0 ? -1 : 0;
}

int container_create(const struct create_opts *o, pid_t *child_out, struct velo_err *err) {
  struct velo_err e = {0};
  if (container_id_check(o->id, err) < 0) return -1;
  if (G.systemd_cgroup) return velo_fail(err, 0, "--systemd-cgroup is not supported (no systemd cgroup manager); use the cgroupfs driver");
  char bundle[4096];
  if (!realpath(o->bundle ? o->bundle : ".", bundle)) return VELO_FAIL_ERRNO(err, "--bundle %s", o->bundle ? o->bundle : ".");
  json_object *cfg = config_read(bundle, err);
  if (!cfg) return -1;
  /* everything is validated before the first change */
  struct ns_plan ns = {0};
  for (int i = 0; i < NS_COUNT; i++) ns.join_fd[i] = -1;
  struct proc_plan pp = {0};
  struct oci_cgroup cg = {0};
  struct oci_seccomp *sc = NULL;
  char *rootfs = NULL;
  json_object *sysctl = NULL;
  long persona = -1;
  const char *hostname = NULL, *domainname = NULL;
  json_object *linux_ = cfg_get(cfg, "linux");
  int rc = -1;
  char *dir = NULL;
  bool made_dir = false, made_cg = false;
  pid_t child = -1;
  int sv[2] = {-1, -1}, fifo = -1, console = -1;
  struct container c = {0};
  if (validate_top(cfg, &e) < 0 || proc_plan(cfg_get(cfg, "process"), "process", &pp, &e) < 0 || ns_plan(linux_, &ns, &e) < 0 ||
      oci_mounts_validate(cfg, bundle, ns.listed[NS_USER] && ns.join_fd[NS_USER] < 0, &rootfs, &e) < 0 || oci_cgroup_plan(linux_, o->id, G.systemd_cgroup, &cg, &e) < 0 ||
      oci_seccomp_compile(cfg_get(linux_, "seccomp"), &sc, &e) < 0 || sysctl_validate(linux_, &ns, &sysctl, &e) < 0 ||
      personality_validate(linux_, &persona, &e) < 0 || cfg_str(cfg, "hostname", "", &hostname, &e) < 0 ||
      cfg_str(cfg, "domainname", "", &domainname, &e) < 0)
    goto fail;
  /* a uts namespace of the container's own (new, or joined by path as runc allows): never the host's */
  if (hostname && *hostname && !ns.listed[NS_UTS]) {
    cfg_fail(&e, NULL, "hostname", "needs a uts namespace in linux.namespaces");
    goto fail;
  }
  if (hostname && !*hostname) hostname = NULL;
  if (domainname && *domainname && !ns.listed[NS_UTS]) {
    cfg_fail(&e, NULL, "domainname", "needs a uts namespace in linux.namespaces");
    goto fail;
  }
  if (domainname && !*domainname) domainname = NULL;
  if (pp.terminal && !o->console_socket && !o->relay_sock) {
    cfg_fail(&e, "process", "terminal", "needs --console-socket (the engine's end of the terminal)");
    goto fail;
  }
  if (!pp.terminal && o->console_socket) {
    velo_fail(&e, 0, "--console-socket given but process.terminal is false");
    goto fail;
  }

  /* claim the id: mkdir is atomic */
  if (container_dir(o->id, &dir, &e) < 0) goto fail;
  if (mkdir(dir, 0700) < 0) {
    if (errno == EEXIST) velo_fail(&e, 0, "container with id %s already exists", o->id);
    else VELO_FAIL_ERRNO(&e, "create the state dir %s (is --root %s writable?)", dir, G.root);
    goto fail;
  }
  made_dir = true;
  c.id = strdup(o->id);
  c.dir = strdup(dir);
  c.config = json_object_get(cfg);
  c.state = json_object_new_object();
  json_object_object_add(c.state, "id", json_object_new_string(o->id));
  json_object_object_add(c.state, "bundle", json_object_new_string(bundle));
  json_object_object_add(c.state, "rootfs", json_object_new_string(rootfs));
  char *created = now_rfc3339();
  json_object_object_add(c.state, "created", json_object_new_string(created));
  free(created);
  json_object_object_add(c.state, "cgroup", oci_cgroup_to_json(&cg));
  {
    const char *txt = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (container_write_file(dir, "config.json", txt, strlen(txt), &e) < 0 || container_save(&c, &e) < 0) goto fail;
    void *bpf;
    size_t bl;
    if (sc) {
      if (oci_seccomp_bytes(sc, &bpf, &bl) < 0) {
        velo_fail(&e, ENOMEM, "seccomp");
        goto fail;
      }
      int w = container_write_file(dir, "seccomp.bpf", bpf, bl, &e);
      free(bpf);
      if (w < 0) goto fail;
    }
  }
  if (oci_cgroup_create(&cg, linux_, &e) < 0) goto fail_cg;
  made_cg = true;
  if (!cg.n) {
    /* rootless without a cgroup (oci_cgroup_create): the state says so, so delete and kill go by the pid alone */
    json_object_object_del(c.state, "cgroup");
    if (container_save(&c, &e) < 0) goto fail;
  }
  char fifo_path[4200];
  snprintf(fifo_path, sizeof fifo_path, "%s/exec.fifo", dir);
  if (mkfifo(fifo_path, 0600) < 0) {
    VELO_FAIL_ERRNO(&e, "mkfifo %s", fifo_path);
    goto fail;
  }
  /* O_RDWR never blocks and keeps the pipe alive: the child blocks reading it until `start` writes */
  fifo = open(fifo_path, O_RDWR | O_CLOEXEC);
  if (fifo < 0) {
    VELO_FAIL_ERRNO(&e, "open %s", fifo_path);
    goto fail;
  }
  if (o->console_socket && (console = console_connect(o->console_socket, &e)) < 0) goto fail;
  if (pp.terminal && !o->console_socket) {
    int tp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tp) < 0) {
      VELO_FAIL_ERRNO(&e, "socketpair for the terminal");
      goto fail;
    }
    console = tp[1];
    *o->relay_sock = tp[0];
  }
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    VELO_FAIL_ERRNO(&e, "socketpair");
    goto fail;
  }
  if (ns_parent_prepare(&ns, &e) < 0) goto fail;
  fflush(NULL);
  bool born_in_cg = false;
  child = oci_cgroup_clone(&cg, (unsigned long)ns.clone_flags, &born_in_cg);
  if (child < 0) {
    VELO_FAIL_ERRNO(&e, "clone into new namespaces (flags 0x%x)", ns.clone_flags);
    goto fail;
  }
  if (child == 0) {
    close(sv[0]);
    struct child_ctx x = {.o = o, .config = cfg, .ns = &ns, .pp = &pp, .sc = sc, .cg = &cg, .bundle = bundle, .rootfs = rootfs,
                          .hostname = hostname, .domainname = domainname, .sysctl = sysctl, .persona = persona, .sync = sv[1],
                          .fifo = fifo, .console = console, .born_in_cg = born_in_cg};
    child_main(&x);
  }
  close(sv[1]), sv[1] = -1;
  close(fifo), fifo = -1;
  if (console >= 0) close(console), console = -1;
  c.pid = child;
  for (;;) {
    char buf[1024];
    ssize_t n;
    do n = recv(sv[0], buf, sizeof buf - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
      int st = 0;
      waitpid(child, &st, 0);
      child = -1;
      velo_fail(&e, 0, "the container's process died during set-up (%s %d)", WIFSIGNALED(st) ? "signal" : "status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
      goto fail;
    }
    buf[n] = 0;
    if (buf[0] == 'E') {
      velo_fail(&e, 0, "%s", buf + 1);
      goto fail;
    }
    if (buf[0] == 'M') {
      if ((!born_in_cg && oci_cgroup_join(&cg, child, CG_V2, &e) < 0) || ns_write_maps(&ns, child, &e) < 0) goto fail;
      /* the idmapped mounts, made here in the host's user namespace with the child's new one */
      json_object *mounts = cfg_get(cfg, "mounts");
      size_t nm = mounts ? json_object_array_length(mounts) : 0;
      int *fds = calloc(nm ? nm : 1, sizeof *fds);
      char up[64];
      snprintf(up, sizeof up, "/proc/%d/ns/user", (int)child);
      int ufd = fds ? open(up, O_RDONLY | O_CLOEXEC) : -1;
      int pr = ufd < 0 ? VELO_FAIL_ERRNO(&e, "open %s", up) : oci_mounts_prepare_idmapped(cfg, bundle, ufd, fds, nm, &e);
      if (pr == 0 && send_mount_fds(sv[0], fds, nm) < 0) pr = VELO_FAIL_ERRNO(&e, "sync with the container's process");
      for (size_t i = 0; fds && i < nm; i++)
        if (fds[i] >= 0) close(fds[i]);
      free(fds);
      if (ufd >= 0) close(ufd);
      if (pr < 0) goto fail;
    } else if (buf[0] == 'H') {
      char *st = container_state_json(&c, "creating");
      int hr = hooks_run(cfg, "prestart", st, &e);
      if (hr == 0) hr = hooks_run(cfg, "createRuntime", st, &e);
      if (hr == 0 && send_msg(sv[0], 'g', st) < 0) hr = VELO_FAIL_ERRNO(&e, "sync with the container's process");
      free(st);
      if (hr < 0) goto fail;
    } else if (buf[0] == 'R') {
      break;
    } else {
      velo_fail(&e, 0, "unexpected message from the container's process");
      goto fail;
    }
  }
  if (proc_starttime(child, &c.pid_start, NULL) < 0) {
    velo_fail(&e, 0, "the container's process exited right after set-up");
    goto fail;
  }
  if (container_save(&c, &e) < 0) goto fail;
  if (o->pid_file && write_pid_file(o->pid_file, child, &e) < 0) goto fail;
  rc = 0;
  if (child_out) *child_out = child;
  goto done;

fail:
  if (o->relay_sock && *o->relay_sock >= 0) close(*o->relay_sock), *o->relay_sock = -1;
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
fail_cg:
  if (cg.n && made_cg) {
    /* only a cgroup we made is emptied and removed: before that, the path may be another container's (the
     * id already exists) or one a cgroupsPath names that holds other processes (oci_cgroup_create undoes
     * its own partial work) */
    struct velo_err e2 = {0};
    oci_cgroup_kill_all(&cg, SIGKILL, 2000, &e2);
    oci_cgroup_destroy(&cg, &e2);
  }
  if (made_dir) rm_tree_at(AT_FDCWD, dir);
  if (err) *err = e;
  rc = -1;
done:
  if (sv[0] >= 0) close(sv[0]);
  if (sv[1] >= 0) close(sv[1]);
  if (fifo >= 0) close(fifo);
  if (console >= 0) close(console);
  ns_plan_close(&ns);
  oci_seccomp_free(sc);
  proc_plan_free(&pp);
  oci_cgroup_free(&cg);
  free(rootfs);
  free(dir);
  container_free(&c);
  json_object_put(cfg);
  return rc;
}

int container_start(struct container *c, struct velo_err *e) {
  const char *status = container_status(c);
  if (strcmp(status, "created")) return velo_fail(e, 0, "cannot start container %s: it is %s, not created", c->id, status);
  char fifo_path[4200];
  snprintf(fifo_path, sizeof fifo_path, "%s/exec.fifo", c->dir);
  cleanup_fd int fd = open(fifo_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENXIO) return velo_fail(e, 0, "cannot start container %s: its process is gone", c->id);
    return VELO_FAIL_ERRNO(e, "open %s", fifo_path);
  }
  fcntl(fd, F_SETFL, 0);
  char *st = container_state_json(c, "created");
  uint32_t len = (uint32_t)strlen(st);
  signal(SIGPIPE, SIG_IGN);
  int w = write_all(fd, &len, sizeof len) < 0 || write_all(fd, st, len) < 0 ? -1 : 0;
  free(st);
  if (w < 0) return VELO_FAIL_ERRNO(e, "start container %s", c->id);
  unlink(fifo_path);
  /* poststart hooks run after the container's program is executed (spec): the process holds the fifo open
   * (close-on-exec) until its execve, so wait until it has no reader left — poll reports POLLERR on a write end
   * whose readers are gone (a process that died instead also ends the wait; at most 10 s) */
  json_object *post = cfg_get(cfg_get(c->config, "hooks"), "poststart");
  if (post && json_object_array_length(post) > 0) {
    struct pollfd pf = {.fd = fd, .events = 0};
    while (poll(&pf, 1, 10000) < 0 && errno == EINTR) {
    }
  }
  /* poststart failures only warn: the container is already running (spec) */
  char *running = container_state_json(c, "running");
  struct velo_err he = {0};
  hooks_run(c->config, "poststart", running, &he);
  free(running);
  return 0;
}
