/* linux.namespaces: new ones (clone flags, or unshare for cgroup and time, which must come after the child
 * has joined its cgroup / had its offsets written), or joined by path (setns; the fd's type is checked with
 * NS_GET_NSTYPE so a path to the wrong kind of namespace is an error, not a silent surprise). */
#include <fcntl.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

const char *const NS_NAMES[NS_COUNT] = {"user", "mount", "pid", "network", "ipc", "uts", "cgroup", "time"};
const char *const NS_PROC_NAMES[NS_COUNT] = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"};
const int NS_CLONE_FLAGS[NS_COUNT] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWTIME};

int oci_id_maps(json_object *obj, const char *at, const char *key, char **out, struct velo_err *e) {
  json_object *arr;
  int r = cfg_arr(obj, key, at, &arr, e);
  if (r < 0) return -1;
  if (r == 1 || json_object_array_length(arr) == 0) return 1;
  size_t n = json_object_array_length(arr);
  if (n > 340) return cfg_fail(e, at, key, "at most 340 ranges");
  char *buf = calloc(n, 80);
  if (!buf) return velo_fail(e, ENOMEM, "%s", key);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    json_object *m = json_object_array_get_idx(arr, i);
    char where[64];
    snprintf(where, sizeof where, "%s.%s[%zu]", at, key, i);
    static const char *const keys[] = {"containerID", "hostID", "size", NULL};
    uint64_t c = 0, h = 0, s = 0;
    if (cfg_only_keys(m, where, keys, e) < 0 || cfg_u64(m, "containerID", where, &c, e) != 0 || cfg_u64(m, "hostID", where, &h, e) != 0 ||
        cfg_u64(m, "size", where, &s, e) != 0 || c > UINT32_MAX || h > UINT32_MAX || !s || s > UINT32_MAX) {
      free(buf);
      return e->msg[0] ? -1 : cfg_fail(e, where, NULL, "needs containerID, hostID and size (> 0), each a 32-bit id");
    }
    len += (size_t)sprintf(buf + len, "%llu %llu %llu\n", (unsigned long long)c, (unsigned long long)h, (unsigned long long)s);
  }
  *out = buf;
  return 0;
}

int ns_plan(json_object *linux_, struct ns_plan *n, struct velo_err *e) {
  memset(n, 0, sizeof *n);
  for (int i = 0; i < NS_COUNT; i++) n->join_fd[i] = -1;
  json_object *arr;
  int r = cfg_arr(linux_, "namespaces", "linux", &arr, e);
  if (r < 0) return -1;
  size_t cnt = r == 0 ? json_object_array_length(arr) : 0;
  for (size_t i = 0; i < cnt; i++) {
    json_object *o = json_object_array_get_idx(arr, i);
    char where[48];
    snprintf(where, sizeof where, "linux.namespaces[%zu]", i);
    static const char *const keys[] = {"type", "path", NULL};
    const char *type = NULL, *path = NULL;
    if (cfg_only_keys(o, where, keys, e) < 0 || cfg_str(o, "type", where, &type, e) < 0 || cfg_str(o, "path", where, &path, e) < 0) return -1;
    if (!type) return cfg_fail(e, where, "type", "required");
    int t = -1;
    for (int k = 0; k < NS_COUNT; k++)
      if (!strcmp(type, NS_NAMES[k])) t = k;
    if (t < 0) return cfg_fail(e, where, "type", "unknown namespace type \"%s\"", type);
    if (n->listed[t]) return cfg_fail(e, where, "type", "namespace \"%s\" listed twice", type);
    n->listed[t] = true;
    if (path && *path) {
      if (path[0] != '/') return cfg_fail(e, where, "path", "must be absolute");
      n->join_fd[t] = open(path, O_RDONLY | O_CLOEXEC);
      if (n->join_fd[t] < 0) return VELO_FAIL_ERRNO(e, "config.json: %s.path: %s", where, path);
      int kind = ioctl(n->join_fd[t], NS_GET_NSTYPE);
      if (kind < 0) return VELO_FAIL_ERRNO(e, "config.json: %s.path: %s is not a namespace", where, path);
      if (kind != NS_CLONE_FLAGS[t]) return cfg_fail(e, where, "path", "%s is not a %s namespace", path, type);
    } else if (t != NS_CGROUP && t != NS_TIME) {
      n->clone_flags |= NS_CLONE_FLAGS[t];
    }
  }
  /* a mount namespace of its own is what keeps every mount of the container off the host */
  if (!n->listed[NS_MNT] || n->join_fd[NS_MNT] >= 0)
    return cfg_fail(e, "linux", "namespaces", "velo-runtime needs a new mount namespace (type \"mount\" without a path)");
  bool new_user = n->listed[NS_USER] && n->join_fd[NS_USER] < 0;
  if ((r = oci_id_maps(linux_, "linux", "uidMappings", &n->uid_map, e)) < 0 || (r = oci_id_maps(linux_, "linux", "gidMappings", &n->gid_map, e)) < 0) return -1;
  if (new_user && (!n->uid_map || !n->gid_map)) return cfg_fail(e, "linux", "uidMappings", "a new user namespace needs uidMappings and gidMappings");
  if (!new_user && (n->uid_map || n->gid_map)) return cfg_fail(e, "linux", n->uid_map ? "uidMappings" : "gidMappings", "needs a new user namespace in linux.namespaces");
  json_object *to;
  if ((r = cfg_obj(linux_, "timeOffsets", "linux", &to, e)) < 0) return -1;
  if (r == 0) {
    if (!n->listed[NS_TIME] || n->join_fd[NS_TIME] >= 0) return cfg_fail(e, "linux", "timeOffsets", "needs a new time namespace in linux.namespaces");
    static const char *const clocks[] = {"monotonic", "boottime", NULL};
    if (cfg_only_keys(to, "linux.timeOffsets", clocks, e) < 0) return -1;
    char buf[256] = "";
    size_t len = 0;
    for (int c = 0; clocks[c]; c++) {
      json_object *o = cfg_get(to, clocks[c]);
      if (!o) continue;
      char where[48];
      snprintf(where, sizeof where, "linux.timeOffsets.%s", clocks[c]);
      static const char *const k2[] = {"secs", "nanosecs", NULL};
      int64_t s = 0, ns = 0;
      if (cfg_only_keys(o, where, k2, e) < 0 || cfg_i64(o, "secs", where, &s, e) < 0 || cfg_i64(o, "nanosecs", where, &ns, e) < 0) return -1;
      if (ns < 0 || ns > 999999999) return cfg_fail(e, where, "nanosecs", "must be 0..999999999");
      len += (size_t)snprintf(buf + len, sizeof buf - len, "%s %lld %lld\n", clocks[c], (long long)s, (long long)ns);
    }
    n->time_offsets = strdup(buf);
  }
  return 0;
}

void ns_plan_close(struct ns_plan *n) {
  for (int i = 0; i < NS_COUNT; i++)
    if (n->join_fd[i] >= 0) close(n->join_fd[i]), n->join_fd[i] = -1;
  free(n->uid_map);
  free(n->gid_map);
  free(n->time_offsets);
  n->uid_map = n->gid_map = n->time_offsets = NULL;
}

int ns_parent_prepare(struct ns_plan *n, struct velo_err *e) {
  /* setns(pid) and unshare(time) change what the caller's *children* get: done here, clone() follows */
  if (n->join_fd[NS_PID] >= 0 && setns(n->join_fd[NS_PID], CLONE_NEWPID) < 0) return VELO_FAIL_ERRNO(e, "join the pid namespace of linux.namespaces");
  if (n->join_fd[NS_TIME] >= 0 && setns(n->join_fd[NS_TIME], CLONE_NEWTIME) < 0) return VELO_FAIL_ERRNO(e, "join the time namespace of linux.namespaces");
  if (n->listed[NS_TIME] && n->join_fd[NS_TIME] < 0) {
    if (unshare(CLONE_NEWTIME) < 0) return VELO_FAIL_ERRNO(e, "new time namespace");
    if (n->time_offsets) {
      cleanup_fd int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write_all(fd, n->time_offsets, strlen(n->time_offsets)) < 0) return VELO_FAIL_ERRNO(e, "config.json: linux.timeOffsets");
    }
  }
  return 0;
}

static int write_proc(pid_t pid, const char *file, const char *data, struct velo_err *e) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  cleanup_fd int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write_all(fd, data, strlen(data)) < 0) return VELO_FAIL_ERRNO(e, "write %s (%s)", path, data);
  return 0;
}

bool rt_rootless(void) { return geteuid() != 0; }

/* A map of exactly our own id ("C OWN 1"): the one map an unprivileged process may write itself. */
static bool own_id_only(const char *map, unsigned long own) {
  unsigned long c, h, s;
  int used = 0;
  return sscanf(map, "%lu %lu %lu\n%n", &c, &h, &s, &used) == 3 && h == own && s == 1 && !map[used];
}

/* Without root, a map with more than our own id goes through the setuid newuidmap/newgidmap (Debian's uidmap),
 * which check it against the user's /etc/subuid and /etc/subgid ranges, as runc and Podman do. */
static int map_with_tool(const char *tool, pid_t child, const char *map, struct velo_err *e) {
  char *argv[3 + 3 * 340 + 1];
  int argc = 0;
  char pid[16];
  snprintf(pid, sizeof pid, "%d", (int)child);
  argv[argc++] = (char *)tool;
  argv[argc++] = pid;
  char *copy = strdup(map);
  if (!copy) return velo_fail(e, ENOMEM, "%s", tool);
  char *save = NULL;
  for (char *t = strtok_r(copy, " \n", &save); t && argc < (int)(sizeof argv / sizeof *argv) - 1; t = strtok_r(NULL, " \n", &save)) argv[argc++] = t;
  argv[argc] = NULL;
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) return free(copy), VELO_FAIL_ERRNO(e, "pipe");
  pid_t p = fork();
  if (p < 0) {
    int en = errno;
    close(ep[0]), close(ep[1]), free(copy);
    return velo_fail(e, en, "fork %s", tool);
  }
  if (p == 0) {
    dup2(ep[1], 2);
    execvp(tool, argv);
    dprintf(2, "cannot run %s: %s", tool, strerror(errno));
    _exit(127);
  }
  close(ep[1]);
  free(copy);
  char out[512] = "";
  ssize_t got = 0, r;
  while (got < (ssize_t)sizeof out - 1 && ((r = read(ep[0], out + got, sizeof out - 1 - (size_t)got)) > 0 || (r < 0 && errno == EINTR))) got += r > 0 ? r : 0;
  close(ep[0]);
  int st = 0;
  while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == ' ')) got--;
  out[got] = 0;
  bool missing = WIFEXITED(st) && WEXITSTATUS(st) == 127;
  return velo_fail(e, missing ? ENOENT : EPERM, "%s %s failed: %s (%s)", tool, pid, got ? out : "no reason given",
                   missing ? "install Debian's uidmap package" : "the ranges must be the user's own in /etc/subuid and /etc/subgid");
}

int ns_write_maps(const struct ns_plan *n, pid_t child, struct velo_err *e) {
  if (!(n->clone_flags & CLONE_NEWUSER)) return 0;
  if (rt_rootless()) {
    if (own_id_only(n->uid_map, geteuid()) && own_id_only(n->gid_map, getegid())) {
      /* our own ids alone: written directly; a gid map then needs setgroups denied (user_namespaces(7)) */
      if (write_proc(child, "uid_map", n->uid_map, e) < 0 || write_proc(child, "setgroups", "deny", e) < 0) return -1;
      return write_proc(child, "gid_map", n->gid_map, e);
    }
    if (map_with_tool("newuidmap", child, n->uid_map, e) < 0) return -1;
    return map_with_tool("newgidmap", child, n->gid_map, e);
  }
  if (write_proc(child, "uid_map", n->uid_map, e) < 0) return -1;
  return write_proc(child, "gid_map", n->gid_map, e);
}

int ns_child_join(struct ns_plan *n, struct velo_err *e) {
  /* the user namespace first: it decides what the rest of the joins are allowed to do */
  static const int ORDER[] = {NS_USER, NS_IPC, NS_UTS, NS_NET, NS_CGROUP, NS_MNT};
  for (size_t i = 0; i < sizeof ORDER / sizeof *ORDER; i++) {
    int t = ORDER[i];
    if (n->join_fd[t] < 0) continue;
    if (setns(n->join_fd[t], NS_CLONE_FLAGS[t]) < 0) return VELO_FAIL_ERRNO(e, "join the %s namespace of linux.namespaces", NS_NAMES[t]);
    close(n->join_fd[t]);
    n->join_fd[t] = -1;
  }
  return 0;
}


int ns_run_mapped(const char *uid_map, const char *gid_map, int (*fn)(void *), void *arg, struct velo_err *e) {
  int up[2], down[2];
  if (pipe2(up, O_CLOEXEC) < 0) return VELO_FAIL_ERRNO(e, "pipe");
  if (pipe2(down, O_CLOEXEC) < 0) return close(up[0]), close(up[1]), VELO_FAIL_ERRNO(e, "pipe");
  fflush(NULL);
  pid_t p = fork();
  if (p == 0) {
    close(up[0]), close(down[1]);
    char c = 'u';
    if (unshare(CLONE_NEWUSER) < 0) c = 'x';
    if (write(up[1], &c, 1) != 1 || c == 'x' || read(down[0], &c, 1) != 1 || c != 'g') _exit(125);
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) _exit(125);
    _exit(fn(arg) == 0 ? 0 : 1);
  }
  close(up[1]), close(down[0]);
  if (p < 0) return close(up[0]), close(down[1]), VELO_FAIL_ERRNO(e, "fork");
  char c = 0;
  int rc = 0;
  if (read(up[0], &c, 1) != 1 || c != 'u') rc = velo_fail(e, 0, "cannot make a user namespace");
  else if (map_with_tool("newuidmap", p, uid_map, e) < 0 || map_with_tool("newgidmap", p, gid_map, e) < 0) rc = -1;
  else if (write(down[1], "g", 1) != 1) rc = VELO_FAIL_ERRNO(e, "sync");
  close(up[0]), close(down[1]);
  int st = 0;
  while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
  }
  if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) rc = velo_fail(e, 0, "the work in the user namespace failed (%s %d)", WIFSIGNALED(st) ? "signal" : "status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
  return rc;
}
