/* The spec's process object (create's, and exec's --process): validated before anything is changed, applied
 * in the container's process in the order runc uses: rlimits, oom_score_adj and I/O priority while still
 * privileged; then the bounding set, the user (groups, gid, uid) with capabilities kept across the switch, the
 * remaining capability sets, no_new_privs, seccomp, and execve with exactly the process's environment. */
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "rt.h"

const char *const CAP_NAMES[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE", NULL};
#define N_CAPS ((int)(sizeof CAP_NAMES / sizeof *CAP_NAMES) - 1)

int cap_last(void) {
  static int last = -1;
  if (last >= 0) return last;
  int c = 0;
  while (prctl(PR_CAPBSET_READ, c + 1, 0, 0, 0) >= 0) c++;
  return last = c;
}

static const struct {
  const char *name;
  int res;
} RLIMITS[] = {
    {"RLIMIT_AS", RLIMIT_AS}, {"RLIMIT_CORE", RLIMIT_CORE}, {"RLIMIT_CPU", RLIMIT_CPU}, {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE}, {"RLIMIT_LOCKS", RLIMIT_LOCKS}, {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE}, {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC}, {"RLIMIT_RSS", RLIMIT_RSS}, {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME}, {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
};

static int str_array(json_object *o, const char *key, const char *where, char ***out, size_t *n_out, struct velo_err *e) {
  json_object *arr;
  int r = cfg_arr(o, key, where, &arr, e);
  if (r != 0) return r;
  size_t n = json_object_array_length(arr);
  char **v = calloc(n + 1, sizeof *v);
  if (!v) return velo_fail(e, ENOMEM, "%s.%s", where, key);
  for (size_t i = 0; i < n; i++) {
    json_object *s = json_object_array_get_idx(arr, i);
    if (!s || !json_object_is_type(s, json_type_string)) {
      free(v);
      char k[64];
      snprintf(k, sizeof k, "%s[%zu]", key, i);
      return cfg_fail(e, where, k, "expected a string");
    }
    v[i] = (char *)json_object_get_string(s);
    if (strlen(v[i]) != (size_t)json_object_get_string_len(s)) {
      free(v);
      char k[64];
      snprintf(k, sizeof k, "%s[%zu]", key, i);
      return cfg_fail(e, where, k, "contains a NUL character");
    }
  }
  *out = v;
  if (n_out) *n_out = n;
  return 0;
}

static int cap_set(json_object *caps, const char *key, const char *where, uint64_t *mask, struct velo_err *e) {
  char **names = NULL;
  size_t n = 0;
  int r = str_array(caps, key, where, &names, &n, e);
  if (r < 0) return -1;
  *mask = 0;
  for (size_t i = 0; i < n; i++) {
    int bit = -1;
    for (int c = 0; c < N_CAPS; c++)
      if (!strcasecmp(names[i], CAP_NAMES[c]) || !strcasecmp(names[i], CAP_NAMES[c] + 4)) bit = c;
    if (bit < 0) {
      char k[64];
      snprintf(k, sizeof k, "%s[%zu]", key, i);
      cfg_fail(e, where, k, "unknown capability \"%s\"", names[i]);
      free(names);
      return -1;
    }
    /* a capability this kernel does not have is left out, as runc does (engines list newer ones) */
    if (bit <= cap_last()) *mask |= 1ULL << bit;
  }
  free(names);
  return 0;
}

int proc_plan(json_object *p, const char *where, struct proc_plan *pp, struct velo_err *e) {
  memset(pp, 0, sizeof *pp);
  pp->p = p;
  pp->umask = -1;
  if (!p) return cfg_fail(e, NULL, where, "required");
  static const char *const keys[] = {"terminal", "consoleSize", "user", "args", "env", "cwd", "capabilities", "rlimits", "noNewPrivileges",
                                     "apparmorProfile", "oomScoreAdj", "selinuxLabel", "ioPriority", "scheduler", "execCPUAffinity", "commandLine", NULL};
  if (cfg_only_keys(p, where, keys, e) < 0) return -1;
  int r;
  if (cfg_bool(p, "terminal", where, &pp->terminal, e) < 0) return -1;
  json_object *cs;
  if ((r = cfg_obj(p, "consoleSize", where, &cs, e)) < 0) return -1;
  if (r == 0) {
    char w[64];
    snprintf(w, sizeof w, "%s.consoleSize", where);
    static const char *const k[] = {"height", "width", NULL};
    uint64_t h = 0, wd = 0;
    if (cfg_only_keys(cs, w, k, e) < 0 || cfg_u64(cs, "height", w, &h, e) < 0 || cfg_u64(cs, "width", w, &wd, e) < 0) return -1;
    if (h > 65535 || wd > 65535) return cfg_fail(e, w, NULL, "height and width must be at most 65535");
    pp->rows = (unsigned short)h, pp->cols = (unsigned short)wd;
  }
  const char *s = NULL;
  if (cfg_str(p, "commandLine", where, &s, e) < 0) return -1;
  if (s) return cfg_fail(e, where, "commandLine", "is for Windows");
  if (cfg_str(p, "apparmorProfile", where, &s, e) < 0) return -1;
  if (s && *s) return cfg_fail(e, where, "apparmorProfile", "AppArmor is not available to velo-runtime on this host (\"%s\")", s);
  s = NULL;
  if (cfg_str(p, "selinuxLabel", where, &s, e) < 0) return -1;
  if (s && *s) return cfg_fail(e, where, "selinuxLabel", "SELinux is not supported by velo-runtime (\"%s\")", s);
  if (cfg_get(p, "scheduler")) return cfg_fail(e, where, "scheduler", "not supported by velo-runtime");
  if (cfg_get(p, "execCPUAffinity")) return cfg_fail(e, where, "execCPUAffinity", "not supported by velo-runtime");
  size_t n_args = 0;
  if ((r = str_array(p, "args", where, &pp->argv, &n_args, e)) < 0) return -1;
  if (r == 1 || n_args == 0) return cfg_fail(e, where, "args", "required: at least the program to run");
  size_t n_env = 0;
  if ((r = str_array(p, "env", where, &pp->env, &n_env, e)) < 0) return -1;
  if (r == 1) pp->env = calloc(1, sizeof *pp->env);
  for (size_t i = 0; i < n_env; i++)
    if (!strchr(pp->env[i], '=') || pp->env[i][0] == '=') {
      char k[32];
      snprintf(k, sizeof k, "env[%zu]", i);
      return cfg_fail(e, where, k, "expected KEY=VALUE, got \"%s\"", pp->env[i]);
    }
  if ((r = cfg_str(p, "cwd", where, &pp->cwd, e)) < 0) return -1;
  if (r == 1) return cfg_fail(e, where, "cwd", "required");
  if (pp->cwd[0] != '/') return cfg_fail(e, where, "cwd", "must be an absolute path, got \"%s\"", pp->cwd);
  json_object *u;
  if ((r = cfg_obj(p, "user", where, &u, e)) < 0) return -1;
  if (r == 0) {
    char w[64];
    snprintf(w, sizeof w, "%s.user", where);
    static const char *const k[] = {"uid", "gid", "umask", "additionalGids", "username", NULL};
    uint64_t uid = 0, gid = 0;
    if (cfg_only_keys(u, w, k, e) < 0 || cfg_u64(u, "uid", w, &uid, e) < 0 || cfg_u64(u, "gid", w, &gid, e) < 0 || cfg_i64(u, "umask", w, &pp->umask, e) < 0) return -1;
    if (uid >= UINT32_MAX || gid >= UINT32_MAX) return cfg_fail(e, w, NULL, "uid and gid must be 32-bit ids");
    if (pp->umask != -1 && (pp->umask < 0 || pp->umask > 0777)) return cfg_fail(e, w, "umask", "must be 0..0777");
    pp->uid = (uid_t)uid, pp->gid = (gid_t)gid;
    if (cfg_get(u, "username")) return cfg_fail(e, w, "username", "is for Windows");
    json_object *g;
    if ((r = cfg_arr(u, "additionalGids", w, &g, e)) < 0) return -1;
    if (r == 0) {
      pp->n_groups = json_object_array_length(g);
      pp->groups = calloc(pp->n_groups + 1, sizeof *pp->groups);
      for (size_t i = 0; i < pp->n_groups; i++) {
        json_object *x = json_object_array_get_idx(g, i);
        if (!x || !json_object_is_type(x, json_type_int) || json_object_get_int64(x) < 0 || json_object_get_int64(x) >= UINT32_MAX)
          return cfg_fail(e, w, "additionalGids", "expected 32-bit group ids");
        pp->groups[i] = (gid_t)json_object_get_int64(x);
      }
    }
  }
  json_object *caps;
  if ((r = cfg_obj(p, "capabilities", where, &caps, e)) < 0) return -1;
  if (r == 0) {
    char w[64];
    snprintf(w, sizeof w, "%s.capabilities", where);
    static const char *const k[] = {"bounding", "effective", "inheritable", "permitted", "ambient", NULL};
    if (cfg_only_keys(caps, w, k, e) < 0) return -1;
    for (int i = 0; i < 5; i++)
      if (cap_set(caps, k[i], w, &pp->caps[i], e) < 0) return -1;
  }
  if (cfg_bool(p, "noNewPrivileges", where, &pp->no_new_privs, e) < 0) return -1;
  if ((r = cfg_i64(p, "oomScoreAdj", where, &pp->oom_score_adj, e)) < 0) return -1;
  pp->has_oom = r == 0;
  if (pp->has_oom && (pp->oom_score_adj < -1000 || pp->oom_score_adj > 1000)) return cfg_fail(e, where, "oomScoreAdj", "must be -1000..1000");
  json_object *rl;
  if ((r = cfg_arr(p, "rlimits", where, &rl, e)) < 0) return -1;
  for (size_t i = 0; r == 0 && i < json_object_array_length(rl); i++) {
    json_object *x = json_object_array_get_idx(rl, i);
    char w[64];
    snprintf(w, sizeof w, "%s.rlimits[%zu]", where, i);
    static const char *const k[] = {"type", "soft", "hard", NULL};
    const char *type = NULL;
    uint64_t soft = 0, hard = 0;
    if (cfg_only_keys(x, w, k, e) < 0 || cfg_str(x, "type", w, &type, e) < 0 || cfg_u64(x, "soft", w, &soft, e) < 0 || cfg_u64(x, "hard", w, &hard, e) < 0) return -1;
    int res = -1;
    for (size_t j = 0; type && j < sizeof RLIMITS / sizeof *RLIMITS; j++)
      if (!strcmp(type, RLIMITS[j].name)) res = RLIMITS[j].res;
    if (res < 0) return cfg_fail(e, w, "type", "unknown rlimit \"%s\"", type ? type : "");
    for (size_t j = 0; j < pp->n_rlimits; j++)
      if (pp->rlimits[j].resource == res) return cfg_fail(e, w, "type", "%s given twice", type);
    if (pp->n_rlimits >= sizeof pp->rlimits / sizeof *pp->rlimits) return cfg_fail(e, where, "rlimits", "too many");
    pp->rlimits[pp->n_rlimits].resource = res;
    pp->rlimits[pp->n_rlimits].soft = soft;
    pp->rlimits[pp->n_rlimits].hard = hard;
    pp->n_rlimits++;
  }
  json_object *io;
  if ((r = cfg_obj(p, "ioPriority", where, &io, e)) < 0) return -1;
  if (r == 0) {
    char w[64];
    snprintf(w, sizeof w, "%s.ioPriority", where);
    static const char *const k[] = {"class", "priority", NULL};
    const char *cls = NULL;
    int64_t prio = 0;
    if (cfg_only_keys(io, w, k, e) < 0 || cfg_str(io, "class", w, &cls, e) < 0 || cfg_i64(io, "priority", w, &prio, e) < 0) return -1;
    int c = !cls ? -1 : !strcmp(cls, "IOPRIO_CLASS_RT") ? 1 : !strcmp(cls, "IOPRIO_CLASS_BE") ? 2 : !strcmp(cls, "IOPRIO_CLASS_IDLE") ? 3 : -1;
    if (c < 0) return cfg_fail(e, w, "class", "expected IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE");
    if (prio < 0 || prio > 7) return cfg_fail(e, w, "priority", "must be 0..7");
    pp->has_ioprio = true;
    pp->ioprio = (c << 13) | (int)prio;
  }
  return 0;
}

void proc_plan_free(struct proc_plan *pp) {
  free(pp->argv);
  free(pp->env);
  free(pp->groups);
  memset(pp, 0, sizeof *pp);
}

int proc_apply_early(const struct proc_plan *pp, struct velo_err *e) {
  for (size_t i = 0; i < pp->n_rlimits; i++) {
    struct rlimit rl = {.rlim_cur = pp->rlimits[i].soft, .rlim_max = pp->rlimits[i].hard};
    if (setrlimit(pp->rlimits[i].resource, &rl) < 0) return VELO_FAIL_ERRNO(e, "setrlimit %d (soft %llu, hard %llu)", pp->rlimits[i].resource, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
  }
  if (pp->has_oom) {
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)pp->oom_score_adj);
    cleanup_fd int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write_all(fd, buf, (size_t)n) < 0) return VELO_FAIL_ERRNO(e, "set oom_score_adj to %s", buf);
  }
  if (pp->has_ioprio && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, pp->ioprio) < 0) return VELO_FAIL_ERRNO(e, "ioprio_set");
  if (pp->umask >= 0) umask((mode_t)pp->umask);
  return 0;
}

static const char *env_get(char **env, const char *key) {
  size_t kl = strlen(key);
  for (char **p = env; p && *p; p++)
    if (!strncmp(*p, key, kl) && (*p)[kl] == '=') return *p + kl + 1;
  return NULL;
}

/* errno text as Go prints it (lower case): engines match it (Docker: "no such file or directory" → 127) */
static const char *go_strerror(int err, char *buf, size_t n) {
  snprintf(buf, n, "%s", strerror(err));
  if (buf[0] >= 'A' && buf[0] <= 'Z') buf[0] = (char)(buf[0] - 'A' + 'a');
  return buf;
}

int proc_find_exec(const struct proc_plan *pp, char **out, struct velo_err *e) {
  const char *file = pp->argv[0];
  char eb[128];
  if (!*file) return velo_fail(e, ENOENT, "exec: \"\": executable file not found in $PATH");
  if (strchr(file, '/')) {
    struct stat st;
    if (stat(file, &st) < 0) return velo_fail(e, 0, "exec: \"%s\": stat %s: %s", file, file, go_strerror(errno, eb, sizeof eb));
    if (S_ISDIR(st.st_mode)) return velo_fail(e, 0, "exec: \"%s\": is a directory", file);
    *out = strdup(file);
    return 0;
  }
  const char *path = env_get(pp->env, "PATH");
  if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const char *p = path;;) {
    size_t l = strcspn(p, ":");
    char cand[4200];
    snprintf(cand, sizeof cand, "%.*s%s%s", (int)l, p, l ? "/" : "", file);
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
      *out = strdup(cand);
      return 0;
    }
    if (!p[l]) break;
    p += l + 1;
  }
  return velo_fail(e, 0, "exec: \"%s\": executable file not found in $PATH", file);
}

const int PROC_FORWARD[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
const size_t PROC_N_FORWARD = sizeof PROC_FORWARD / sizeof *PROC_FORWARD;

void proc_forward_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGCHLD);
  for (size_t i = 0; i < PROC_N_FORWARD; i++) sigaddset(set, PROC_FORWARD[i]);
}

int proc_wait_forwarding(pid_t child, const sigset_t *set) {
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(set, &si);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      kill(child, sig);
      continue;
    }
    /* reap everything (run's child may leave orphans of its own to us), return when it is the child */
    int st, code = -1;
    pid_t r;
    while ((r = waitpid(-1, &st, WNOHANG)) > 0)
      if (r == child) code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code >= 0) return code;
  }
}

void proc_reset_signals(void) {
  /* a runtime's caller may have ignored or blocked signals (conmon ignores SIGPIPE): the container starts clean */
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

int proc_default_home(struct proc_plan *pp) {
  size_t n = 0;
  for (; pp->env[n]; n++)
    if (!strncmp(pp->env[n], "HOME=", 5)) return 0;
  /* as runc: HOME from the user's entry in the container's /etc/passwd, else "/" */
  const char *home = "/";
  char line[1024], found[1024] = "";
  FILE *f = fopen("/etc/passwd", "re");
  while (f && fgets(line, sizeof line, f)) {
    char *fields[7] = {0};
    char *save = NULL, *t = line;
    int k = 0;
    for (; k < 7; k++) {
      fields[k] = t;
      char *c = strchr(t, ':');
      if (!c) break;
      *c = 0;
      t = c + 1;
    }
    (void)save;
    if (k < 6 || !fields[2] || strtoul(fields[2], NULL, 10) != pp->uid || !*fields[2]) continue;
    fields[5][strcspn(fields[5], "\n")] = 0;
    if (*fields[5]) snprintf(found, sizeof found, "%s", fields[5]);
    break;
  }
  if (f) fclose(f);
  if (*found) home = found;
  char **env = realloc(pp->env, (n + 2) * sizeof *env);
  if (!env) return -1;
  pp->env = env;
  if (asprintf(&env[n], "HOME=%s", home) < 0) return -1;
  env[n + 1] = NULL;
  return 0;
}

int proc_finalize(const struct proc_plan *pp, struct oci_seccomp *sc, struct velo_err *e) {
  int last = cap_last();
  /* as runc: enter process.cwd while still root, so a user may start in a directory only root can enter
   * (--user 1000 -w /root); only if that fails is it tried again as the user, below */
  bool in_cwd = chdir(pp->cwd) == 0;
  /* without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we still have it */
  if (!pp->no_new_privs && oci_seccomp_load(sc, e) < 0) return -1;
  for (int c = 0; c <= last; c++)
    if (!(c < 64 && (pp->caps[0] & (1ULL << c))) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      return VELO_FAIL_ERRNO(e, "drop capability %d from the bounding set", c);
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return VELO_FAIL_ERRNO(e, "keep capabilities across the user switch");
  if (setgroups(pp->n_groups, pp->groups) < 0) return VELO_FAIL_ERRNO(e, "setgroups (process.user.additionalGids)");
  if (setresgid(pp->gid, pp->gid, pp->gid) < 0) return VELO_FAIL_ERRNO(e, "setgid %u (process.user.gid)", (unsigned)pp->gid);
  if (setresuid(pp->uid, pp->uid, pp->uid) < 0) return VELO_FAIL_ERRNO(e, "setuid %u (process.user.uid)", (unsigned)pp->uid);
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return VELO_FAIL_ERRNO(e, "clear keep-capabilities");
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  d[0].effective = (uint32_t)pp->caps[1], d[1].effective = (uint32_t)(pp->caps[1] >> 32);
  d[0].inheritable = (uint32_t)pp->caps[2], d[1].inheritable = (uint32_t)(pp->caps[2] >> 32);
  d[0].permitted = (uint32_t)pp->caps[3], d[1].permitted = (uint32_t)(pp->caps[3] >> 32);
  if (syscall(SYS_capset, &h, d) < 0) return VELO_FAIL_ERRNO(e, "capset (process.capabilities)");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return VELO_FAIL_ERRNO(e, "clear ambient capabilities");
  for (int c = 0; c <= last && c < 64; c++)
    if ((pp->caps[4] & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0) {
      /* the kernel refuses an ambient capability that is not permitted and inheritable; runc warns and goes on */
      if (errno != EPERM) return VELO_FAIL_ERRNO(e, "raise ambient capability %s", c < N_CAPS ? CAP_NAMES[c] : "?");
    }
  if (pp->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return VELO_FAIL_ERRNO(e, "no_new_privs");
  if (!in_cwd && chdir(pp->cwd) < 0) return VELO_FAIL_ERRNO(e, "chdir to process.cwd %s", pp->cwd);
  if (pp->no_new_privs && oci_seccomp_load(sc, e) < 0) return -1;
  return 0;
}

int proc_exec(const struct proc_plan *pp, const char *path, struct velo_err *e) {
  execve(path, pp->argv, pp->env);
  int err = errno;
  char eb[128];
  velo_fail(e, 0, "exec %s: %s", path, go_strerror(err, eb, sizeof eb));
  errno = err;
  return -1;
}
