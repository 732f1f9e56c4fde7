/* A sandbox's life through velo-runtime's library (native/runtime, linked in: the same code as the velo-runtime
 * verbs, without starting it as a program on every call): the tenant dir is the OCI bundle (config.json from
 * oci.c, root/ the overlay's mount point), the container id is the sandbox name, and the runtime's state lives in
 * <home>/runtime, so `velo-runtime --root <home>/runtime state NAME` sees every sandbox. Both front doors come
 * here: the native fast paths directly, Node through `velo __sandbox`. */
#include "../common/vlog.h"
#include "rtcall.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../common/sysutil.h"
#include "../common/ttyrelay.h"
#include "../runtime/rt.h"
#include "cni.h"
#include "disk.h"
#include "cgroup.h"
#include "events.h"
#include "monitor.h"
#include "oci.h"
#include "userns.h"

static void bin_path(const struct front_ctx *ctx, const char *name, char *buf, size_t len) {
  snprintf(buf, len, "%s/native/build/%s", ctx->pkgroot, name);
}

/* the runtime library keeps its state under G.root, as `velo-runtime --root HOME/runtime` would */
void sb_rt_root(const char *home) {
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
  oci_sandbox_cgroups_path(home, name, rt_rootless(), path, sizeof path);
  /* where its boot put them, as state.json records: a tenant booted before cgroups were per store sits at velo/NAME,
   * and a store whose device number changed (a remount) computes another path than its boot did */
  const char *rec = s.cgroups.n ? strrchr(s.cgroups.v[0], '/') : NULL;
  if (rec && !rt_rootless() && rec[1] && strcmp(rec + 1, ".") && strcmp(rec + 1, "..")) snprintf(path, sizeof path, "/velo/%s", rec + 1);
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

/* A workload's monitor must take what follows for a stop from outside (final: no restart): sb_signal and
 * sb_rt_delete, which every stop and rm goes through, leave this marker first (sb_boot removes it). */
static void stop_request(const char *home, const char *name) {
  char marker[4300];
  snprintf(marker, sizeof marker, "%s/tenants/%s/stop-request", home, name);
  int fd = open(marker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
}

/* tenants/NAME/paused: the sandbox's cgroup is frozen by `velo sandbox pause` (or a volume snapshot), for the
 * listings of both front doors (a running sandbox with it is "paused"); gone when it is thawed, stopped or booted. */
static void paused_marker(const char *home, const char *name, bool on) {
  char p[4300];
  snprintf(p, sizeof p, "%s/tenants/%s/paused", home, name);
  if (!on) {
    unlink(p);
    return;
  }
  int fd = open(p, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
}

int sb_rt_freeze(const char *home, const char *name, bool frozen, char *err, size_t errlen) {
  sb_rt_root(home);
  struct velo_err e = {0};
  int r = container_freeze(name, frozen, &e);
  if (r < 0) return fail_with(&e, err, errlen);
  paused_marker(home, name, frozen);
  return r;
}

int sb_rt_delete(const struct front_ctx *ctx, const char *home, const char *name, char *err, size_t errlen) {
  (void)ctx;
  stop_request(home, name);
  paused_marker(home, name, false);
  sb_rt_root(home);
  char rec[4400];
  snprintf(rec, sizeof rec, "%s/%s", G.root, name);
  struct stat st;
  int r;
  if (lstat(rec, &st) < 0 && errno == ENOENT) r = reap_unrecorded(home, name, err, errlen);
  else {
    struct velo_err e = {0};
    r = container_remove(name, true, &e) < 0 ? fail_with(&e, err, errlen) : 0;
  }
  /* every process is gone: a workload's monitor records the exit and leaves before the caller goes on (rm
   * removes the dir it writes into); the network's plugins undo what they made for it */
  if (r == 0) sb_monitor_wait(home, name, 5000);
  cni_detach(home, name);
  return r;
}

/* A tenant with its own user namespace: its range (userns.c), and what its root (an unprivileged host uid) must
 * reach: the tenant dir and its upper, work and root dirs become its own (the dir 0700: no other host user gets
 * in), and the store and tenants dirs searchable (0711: no listing) so it can get there. */
static int tenant_userns(const char *home, const char *name, const char *dir, struct tenant_ids *ids, char *err, size_t errlen) {
  unsigned long host[2];
  if (userns_range(home, name, &host[0], &host[1], err, errlen) < 0) return -1;
  ids->uid = (struct idmap){.n = 1, .c = {0}, .h = {host[0]}, .s = {USERNS_SIZE}};
  ids->gid = (struct idmap){.n = 1, .c = {0}, .h = {host[1]}, .s = {USERNS_SIZE}};
  char p[4400];
  const char *search[] = {home, NULL};
  snprintf(p, sizeof p, "%s/tenants", home);
  search[1] = p;
  for (int i = 0; i < 2; i++) {
    struct stat st;
    if (stat(search[i], &st) < 0 || ((st.st_mode & 0011) != 0011 && chmod(search[i], (st.st_mode & 07777) | 0011) < 0))
      return snprintf(err, errlen, "cannot make %s searchable for the tenant's user namespace: %s", search[i], strerror(errno)), -1;
  }
  /* the dirs above the store are the user's, not velo's to change: one that other users cannot search (a 0700
   * mktemp dir) keeps the tenant's root out of its own rootfs, which the runtime would only report as EACCES on
   * a path. Said here, before anything starts; a dir with an ACL is left to the kernel to judge. */
  char up[4400];
  if (!realpath(home, up)) return snprintf(err, errlen, "cannot resolve %s: %s", home, strerror(errno)), -1;
  for (char *sl = strrchr(up, '/'); sl; sl = strrchr(up, '/')) {
    *(sl == up ? sl + 1 : sl) = 0;
    struct stat st;
    if (stat(up, &st) == 0 && !(st.st_mode & 0001) && st.st_uid != host[0] && getxattr(up, "system.posix_acl_access", NULL, 0) < 0)
      return snprintf(err, errlen,
                      "PERMISSION_DENIED: the tenant's root (host uid %lu, its user namespace) cannot reach the store: %s (mode %04o) is not searchable by other users\n"
                      "suggestion: chmod o+x %s, or put the store (--home, VELO_HOME) below directories anyone may search; as root, --userns host runs the tenant without a user namespace",
                      host[0], up, (unsigned)(st.st_mode & 07777), up),
             -1;
    if (sl == up) break;
  }
  static const char *const subs[] = {"", "/upper", "/work", "/root"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", dir, subs[i]);
    if (lchown(p, (uid_t)host[0], (gid_t)host[1]) < 0 || (i == 0 && chmod(p, 0700) < 0))
      return snprintf(err, errlen, "cannot give %s to the tenant's user namespace: %s", p, strerror(errno)), -1;
  }
  return 0;
}

/* Not root: which of the tenant's limits this host lets velo apply. A cgroup limit needs a cgroup v2 parent that
 * is delegated to the user (writable, with that controller); the disk quota needs root (quotactl). What cannot
 * apply is dropped from the state (inspect shows what holds) and named in a warning on stderr, as Docker does
 * ("Limitation discarded"); s->cgroups becomes the dirs velo-runtime will make, or none. */
static void rootless_limits(const char *home, struct tstate *s) {
  char path[300];
  oci_sandbox_cgroups_path(home, s->name, true, path, sizeof path);
  json_object *lin = json_object_new_object();
  json_object_object_add(lin, "cgroupsPath", json_object_new_string(path));
  struct oci_cgroup cg;
  struct velo_err e = {0};
  char parent[4400] = "", avail[512] = "";
  bool delegated = false;
  if (oci_cgroup_plan(lin, s->name, false, &cg, &e) == 0) {
    if (cg.v2 && cg.n == 1) {
      snprintf(parent, sizeof parent, "%s", cg.h[0].path);
      for (int up = 0; up < 2; up++) {
        char *sl = strrchr(parent, '/');
        if (sl) *sl = 0;
      }
      char f[4500];
      snprintf(f, sizeof f, "%s/velo", parent);
      delegated = access(f, W_OK) == 0 || (errno == ENOENT && access(parent, W_OK) == 0);
      /* what the parent can give its children: enabled already, or any it has when no process lives in it */
      char procs[16] = "";
      snprintf(f, sizeof f, "%s/cgroup.procs", parent);
      int fd = open(f, O_RDONLY | O_CLOEXEC);
      bool empty = fd >= 0 && read(fd, procs, sizeof procs) == 0;
      if (fd >= 0) close(fd);
      snprintf(f, sizeof f, "%s/%s", parent, empty ? "cgroup.controllers" : "cgroup.subtree_control");
      fd = delegated ? open(f, O_RDONLY | O_CLOEXEC) : -1;
      ssize_t n = fd >= 0 ? read(fd, avail + 1, sizeof avail - 3) : -1;
      if (fd >= 0) close(fd);
      if (n > 0) {
        avail[0] = ' ';
        avail[n + 1] = 0;
        for (char *c = avail; *c; c++)
          if (*c == '\n') *c = ' ';
        strcat(avail, " ");
      }
    }
    for (size_t i = 0; i < s->cgroups.n; i++) free(s->cgroups.v[i]);
    s->cgroups.n = 0;
    for (size_t i = 0; delegated && i < cg.n; i++) strlist_push(&s->cgroups, cg.h[i].path);
    oci_cgroup_free(&cg);
  } else {
    for (size_t i = 0; i < s->cgroups.n; i++) free(s->cgroups.v[i]);
    s->cgroups.n = 0;
  }
  json_object_put(lin);
  static const char *const CTL[][2] = {{"memory", " memory "}, {"pids", " pids "}, {"cpus", " cpu "}, {"ioReadBps", " io "}, {"ioWriteBps", " io "}, {"disk", NULL}};
  char dropped[200] = "", quota[40] = "";
  int kept = 0;
  for (int i = 0; i < s->n_limits; i++) {
    const char *ctl = NULL;
    bool known = false;
    for (size_t k = 0; k < sizeof CTL / sizeof *CTL; k++)
      if (!strcmp(s->limits[i].key, CTL[k][0])) ctl = CTL[k][1], known = true;
    if (known && (!ctl || !strstr(avail, ctl))) {
      char *to = ctl ? dropped : quota;
      size_t cap = ctl ? sizeof dropped : sizeof quota;
      snprintf(to + strlen(to), cap - strlen(to), "%s%s", *to ? ", " : "", s->limits[i].key);
      continue;
    }
    s->limits[kept++] = s->limits[i];
  }
  s->n_limits = kept;
  if (*dropped)
    vlog("warning", "velo",
            "velo: warning: sandbox %s runs without its %s limit%s: velo is not root, and %s\n"
            "  suggestion: on a cgroup v2 host, delegate a cgroup to uid %u with those controllers (systemd: Delegate= on user@.service), or run velo as root",
            s->name, dropped, strchr(dropped, ',') ? "s" : "",
            !parent[0] ? "this host's cgroups are v1 (no cgroup can be delegated to a user)" : delegated ? "the cgroup delegated to it lacks that controller" : "no cgroup is delegated to it here",
            (unsigned)geteuid());
  if (*quota) vlog("warning", "velo", "velo: warning: sandbox %s runs without its disk limit: a project quota needs root", s->name);
}

struct rm_arg {
  int dfd;
  const char *name;
};
static int rm_in_userns(void *a) { return rm_tree_at(((struct rm_arg *)a)->dfd, ((struct rm_arg *)a)->name); }

static void map_text(const struct idmap *m, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = 0;
  for (unsigned i = 0; i < m->n && n < len; i++) n += (size_t)snprintf(buf + n, len - n, "%lu %lu %lu\n", m->c[i], m->h[i], m->s[i]);
}

int sb_rm_tree(int dfd, const char *name) {
  struct tenant_ids ids;
  char err[512], sug[300];
  if (!rt_rootless() || userns_rootless(&ids, err, sizeof err, sug, sizeof sug) < 0) return rm_tree_at(dfd, name);
  char um[128], gm[128];
  map_text(&ids.uid, um, sizeof um);
  map_text(&ids.gid, gm, sizeof gm);
  struct rm_arg a = {dfd, name};
  struct velo_err e = {0};
  if (ns_run_mapped(um, gm, rm_in_userns, &a, &e) == 0) return 0;
  /* what is left, as far as the user alone can (and errno from that) */
  return rm_tree_at(dfd, name);
}

int sb_boot(const struct front_ctx *ctx, const char *home, struct tstate *s, bool transient, char *err, size_t errlen) {
  char dir[4200], p[4400];
  snprintf(dir, sizeof dir, "%s/tenants/%s", home, s->name);
  /* a container left by a sandbox whose init died (kill -9, reboot): the runtime forgets it before a new one */
  snprintf(p, sizeof p, "%s/runtime/%s", home, s->name);
  struct stat st;
  if (lstat(p, &st) == 0 && sb_rt_delete(ctx, home, s->name, err, errlen) < 0) return -1;
  /* a workload's main command (state.json "main") is read first: malformed, nothing is started */
  __attribute__((cleanup(workload_free))) struct workload wl = {0};
  int has_main = transient ? 0 : workload_read(home, s->name, &wl);
  if (has_main < 0) return snprintf(err, errlen, "the main command in %s/state.json is malformed", dir), -1;
  snprintf(p, sizeof p, "%s/stop-request", dir);
  unlink(p); /* left by the last stop: this boot is a new run */
  paused_marker(home, s->name, false);
  static const char *const subs[] = {"upper", "work", "root"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
    if (mkdir(p, 0755) < 0 && errno != EEXIST) return snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno)), -1;
  }
  /* not root: always a user namespace (the only way to have one's own root), mapped from the user's own ids */
  bool rootless = rt_rootless();
  struct tenant_ids ids;
  if (rootless) {
    char sug[300];
    if (userns_rootless(&ids, err, errlen, sug, sizeof sug) < 0) {
      char msg[2048];
      snprintf(msg, sizeof msg, "UNSUPPORTED: %s\nsuggestion: %s", err, sug);
      snprintf(err, errlen, "%s", msg);
      return -1;
    }
    s->userns = true;
    rootless_limits(home, s);
  } else {
    if (s->userns && tenant_userns(home, s->name, dir, &ids, err, errlen) < 0) return -1;
    /* the state's cgroups are where this boot's cgroupsPath puts them (oci_sandbox_cgroups_path: the one rule) */
    struct strlist cg;
    int got = cgroup_dirs(home, s->name, &cg);
    for (size_t i = 0; i < s->cgroups.n; i++) free(s->cgroups.v[i]);
    free(s->cgroups.v);
    /* none known (a v1 controller not mounted: the runtime's create says so): none recorded, never stale ones */
    s->cgroups = got == 0 ? cg : (struct strlist){0};
  }
  double v;
  static const char *const TENANT_DIRS[] = {"upper", "work"};
  if (state_limit(s, "disk", &v) && disk_quota_set(dir, TENANT_DIRS, 2, v, "--disk", err, errlen) < 0) return -1;
  unsigned io_dev[2];
  bool io = state_limit(s, "ioReadBps", &v) || state_limit(s, "ioWriteBps", &v);
  if (io && disk_block_device(dir, &io_dev[0], &io_dev[1], err, errlen) < 0) return -1;
  char init[4200];
  bin_path(ctx, "velo-init", init, sizeof init);
  json_object *cfg = oci_sandbox_config(home, init, s, s->userns ? &ids : NULL, rootless, io ? io_dev : NULL);
  if (!cfg) return snprintf(err, errlen, "out of memory"), -1;
  const char *txt = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int w = dfd < 0 ? -1 : write_file_atomic_at(dfd, "config.json", txt, strlen(txt), 0600);
  int en = errno;
  if (dfd >= 0) close(dfd);
  json_object_put(cfg);
  if (w < 0) return snprintf(err, errlen, "cannot write %s/config.json: %s", dir, strerror(en)), -1;
  /* create + start in this process (the runtime library): the init runs velo-init as soon as it is set up, a
   * child of ours until we exit; its stdio is /dev/null, not ours */
  sb_rt_root(home);
  struct create_opts o = {.id = s->name, .bundle = dir, .null_stdio = true};
  struct velo_err e = {0};
  pid_t pid = -1;
  struct container c = {0};
  bool net_failed = false;
  if (container_create(&o, &pid, &e) < 0 || container_load(s->name, &c, &e) != 0 ||
      /* a velo network: its plugins run while the init waits for start, before anything of the tenant runs */
      (!transient && cni_wanted(s) && (net_failed = cni_attach(home, s, pid, err, errlen) < 0)) || container_start(&c, &e) < 0) {
    container_free(&c);
    if (!net_failed) fail_with(&e, err, errlen);
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
  /* before the monitor: a main command that ends at once has its "die" after this */
  char pidattr[40];
  snprintf(pidattr, sizeof pidattr, "pid=%ld", s->pid);
  const char *attrs[] = {pidattr};
  if (!transient) event_emit(home, "sandbox", "start", s->name, attrs, 1);
  if (has_main == 1) {
    int r = sb_monitor_start(ctx, home, s, err, errlen);
    if (r < 0) {
      char e2[256];
      if (sb_signal(ctx, home, s, SIGKILL, 5000, e2, sizeof e2) >= 0) sb_rt_delete(ctx, home, s->name, e2, sizeof e2);
      return -1;
    }
  }
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
  stop_request(home, s->name);
  sb_rt_root(home);
  struct velo_err e = {0};
  /* a paused sandbox is thawed first: its frozen init could not act on the signal (a stop would wait it out) */
  if (container_freeze(s->name, false, &e) == 0) paused_marker(home, s->name, false);
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
  if (r <= 0) return 2;
  /* init is gone: a workload's monitor records the exit and leaves; the caller returns after it */
  sb_monitor_wait(home, s->name, 5000);
  return 0;
}

int sb_exec_wait(const char *home, const struct tstate *s, const struct oci_exec *x) {
  /* a sandbox is its creator's (the runtime's record of it is theirs): another user is told so, rather than how
   * the first step of joining it failed */
  char rec[4400];
  snprintf(rec, sizeof rec, "%s/runtime/%s", home, s->name);
  struct stat rst;
  if (geteuid() != 0 && (lstat(rec, &rst) < 0 ? errno == EACCES : rst.st_uid != geteuid())) {
    char msg[300];
    snprintf(msg, sizeof msg, "cannot exec in sandbox %s: permission denied (it is not this user's)", s->name);
    return front_error(false, "PERMISSION_DENIED", msg, SB_PERM_SUGGESTION);
  }
  sb_rt_root(home);
  struct velo_err e = {0};
  struct container c;
  if (container_load(s->name, &c, &e) != 0) {
    container_free(&c);
    vlog("error", "velo", "velo: %s", e.msg);
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
    vlog("error", "velo", "velo: %s", e.msg);
    return code;
  }
  /* we are the process's parent, as velo-runtime exec was: signals sent to us are passed on, its code is ours */
  if (relay_sock >= 0) {
    int master = console_recv(relay_sock, &e);
    close(relay_sock);
    if (master < 0) {
      kill(child, SIGKILL);
      vlog("error", "velo", "velo: %s", e.msg);
      return 1;
    }
    return tty_relay(master, child, PROC_FORWARD, PROC_N_FORWARD);
  }
  sigset_t set;
  proc_forward_set(&set);
  return proc_wait_forwarding(child, &set);
}

const char *sb_err_split(char *err, const char **sug) {
  static const char *const CODES[] = {"UNSUPPORTED", "PERMISSION_DENIED", "NOT_FOUND", "BUSY"};
  const char *code = NULL;
  size_t n = 0;
  for (size_t i = 0; i < 2 && !code; i++)
    if (!strncmp(err, CODES[i], n = strlen(CODES[i])) && !strncmp(err + n, ": ", 2)) code = CODES[i];
  if (!code) return NULL;
  memmove(err, err + n + 2, strlen(err + n + 2) + 1);
  char *nl = strstr(err, "\nsuggestion: ");
  *sug = NULL;
  if (nl) {
    *nl = 0;
    *sug = nl + 13;
  }
  return code;
}
