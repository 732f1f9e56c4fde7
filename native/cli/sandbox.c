#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "manifest.h"
#include "events.h"
#include "monitor.h"
#include "profile.h"
#include "util.h"
#include "rtcall.h"
#include "../common/sysutil.h"
#include "../common/vlog.h"

static int sb_err(bool json, const char *code, const char *msg, const char *sug) {
  return front_mute ? front_exit_code(code) : front_error(json, code, msg, sug);
}

/* removeSandbox(home, name, true).catch(() => undefined) after a failed boot */
static void cleanup_tenant(const struct front_ctx *ctx, const char *home, const char *name, const struct tstate *s) {
  bool k, h;
  struct timing tm[3];
  front_mute = true;
  sb_remove(ctx, home, name, s, true, false, &k, tm, &h);
  front_mute = false;
}

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* src/profiles/profile.ts CAPS */
static const char *const CAP_NAMES[] = {
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
    "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
    "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE"};

/* capMask: the kept set as lowercase hex; -1 for a name Node would not know (Node fails on it) */
static int cap_mask(const struct strlist *caps, char *out, size_t len) {
  unsigned long long m = 0;
  for (size_t i = 0; i < caps->n; i++) {
    int bit = -1;
    for (size_t c = 0; c < sizeof CAP_NAMES / sizeof *CAP_NAMES; c++)
      if (!strcmp(caps->v[i], CAP_NAMES[c])) bit = (int)c;
    if (bit < 0) return -1;
    m |= 1ULL << bit;
  }
  snprintf(out, len, "%llx", m);
  return 0;
}

static bool env_key_ok(const char *k, size_t n) {
  if (n == 0 || !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_')) return false;
  for (size_t i = 1; i < n; i++)
    if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_')) return false;
  return true;
}

/* parseEnv: KEY=VALUE with a valid key and no newline; false = Node renders the error */
static bool env_ok(const char *kv) {
  const char *eq = strchr(kv, '=');
  return eq && eq > kv && env_key_ok(kv, (size_t)(eq - kv)) && !strchr(kv, '\n');
}

/* envMerge: later lists win, a key keeps the position of its first appearance (a JS Map) */
static int env_merge(struct strlist *out, const char *kv) {
  const char *eq = strchr(kv, '=');
  if (!eq) return -1;
  size_t kl = (size_t)(eq - kv);
  for (size_t i = 0; i < out->n; i++)
    if (!strncmp(out->v[i], kv, kl) && out->v[i][kl] == '=') {
      char *d = strdup(kv);
      if (!d) return -1;
      free(out->v[i]);
      out->v[i] = d;
      return 0;
    }
  return strlist_push(out, kv);
}

int sb_legacy_hold(const char *home, const char *name) {
  char db[4200];
  snprintf(db, sizeof db, "%s/db/velo.lmdb", home);
  if (access(db, F_OK) < 0) return errno == ENOENT ? 0 : -1;
  struct velo_store st;
  struct velo_err e = {0};
  if (velo_store_open(&st, home, &e) < 0) return -1;
  MDB_txn *txn;
  int found = -1;
  if (velo_txn_begin(&st, &txn, &e) == 0) {
    MDB_dbi holds;
    int rc = mdb_dbi_open(txn, "holds", 0, &holds);
    if (rc == MDB_NOTFOUND) found = 0;
    else if (rc == 0) {
      char key[256];
      /* ordered-binary stores a string key as its UTF-8 bytes (it does not start below 0x20) */
      int n = snprintf(key, sizeof key, "tenant:%s", name);
      MDB_val k = {(size_t)n, key}, v;
      rc = mdb_get(txn, holds, &k, &v);
      found = rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
    }
    mdb_txn_abort(txn);
  }
  velo_store_close(&st);
  return found;
}

int sb_kill(const struct front_ctx *ctx, const char *home, const struct tstate *s, int sig, int timeout_ms, bool json, bool *rendered) {
  char err[2048];
  int r = sb_signal(ctx, home, s, sig, timeout_ms, err, sizeof err);
  *rendered = r < 0;
  if (r >= 0) return r;
  char msg[2200];
  snprintf(msg, sizeof msg, "cannot signal the sandbox's init: %s", err);
  if (strstr(err, "Operation not permitted") || strstr(err, "Permission denied"))
    return sb_err(json, "PERMISSION_DENIED", msg, SB_PERM_SUGGESTION);
  return sb_err(json, "NATIVE", msg, NULL);
}

/* validateNetworkName (src/network/networks.ts): ^[a-z0-9][a-z0-9_.-]{0,62}$, not a reserved name */
static bool network_name_ok(const char *n) {
  static const char *const RESERVED[] = {"loopback", "none", "host", "default"};
  size_t len = strlen(n);
  if (len < 1 || len > 63 || !((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= '0' && n[0] <= '9'))) return false;
  for (size_t i = 0; i < len; i++)
    if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '_' || n[i] == '.' || n[i] == '-')) return false;
  for (size_t i = 0; i < sizeof RESERVED / sizeof *RESERVED; i++)
    if (!strcmp(n, RESERVED[i])) return false;
  return true;
}

/* parsePublish: [HOST_IP:]HOST_PORT:TENANT_PORT[/tcp|udp], ports 1..65535, an IPv4 host address */
static int parse_publish(const char *v, struct tport *p) {
  char buf[128];
  if (strlen(v) >= sizeof buf) return -1;
  strcpy(buf, v);
  p->protocol = "tcp";
  char *slash = strchr(buf, '/');
  if (slash) {
    *slash = 0;
    if (!strcmp(slash + 1, "udp")) p->protocol = "udp";
    else if (strcmp(slash + 1, "tcp")) return -1;
  }
  char *f[3];
  int n = 0;
  for (char *save = NULL, *t = strtok_r(buf, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
    if (n == 3) return -1;
    f[n++] = t;
  }
  if (n < 2 || strchr(v, ':') == v || strstr(v, "::")) return -1;
  int hp = n - 2, cp = n - 1;
  for (int k = hp; k <= cp; k++) {
    size_t d = strspn(f[k], "0123456789");
    if (d == 0 || d > 5 || f[k][d]) return -1;
  }
  p->host_port = atoi(f[hp]);
  p->container_port = atoi(f[cp]);
  if (p->host_port < 1 || p->host_port > 65535 || p->container_port < 1 || p->container_port > 65535) return -1;
  p->host_ip = NULL;
  if (n == 3) {
    /* four dot-separated groups of 1-3 digits, each at most 255 */
    int parts = 0;
    const char *c = f[0];
    while (*c) {
      size_t d = strspn(c, "0123456789");
      if (d < 1 || d > 3 || atoi(c) > 255) return -1;
      parts++;
      c += d;
      if (*c == '.') c++;
      else if (*c) return -1;
    }
    if (parts != 4 || f[0][strlen(f[0]) - 1] == '.') return -1;
    p->host_ip = strdup(f[0]);
  }
  return 0;
}

static struct {
  char name[256];
  int fd, depth;
} held_lock = {.fd = -1};

int sb_lock(const char *home, const char *name) { return sb_lock_how(home, name, true); }

int sb_lock_how(const char *home, const char *name, bool wait) {
  if (held_lock.fd >= 0 && !strcmp(held_lock.name, name)) {
    held_lock.depth++;
    return held_lock.fd;
  }
  char p[4400];
  snprintf(p, sizeof p, "%s/tenants/%s/lock", home, name);
  for (;;) {
    int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      if (errno != EWOULDBLOCK) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
      }
      if (!wait) {
        close(fd);
        errno = EWOULDBLOCK;
        return -1;
      }
      vlog("info", "velo", "sandbox %s: waiting for another velo call on it to end", name);
      while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR) {
          int e = errno;
          close(fd);
          errno = e;
          return -1;
        }
    }
    /* the file we hold must still be the one at its path: an rm meanwhile moved it away with the tenant */
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(p, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
      snprintf(held_lock.name, sizeof held_lock.name, "%s", name);
      held_lock.fd = fd, held_lock.depth = 1;
      return fd;
    }
    close(fd);
  }
}

void sb_unlock(int fd) {
  if (fd < 0) return;
  if (fd == held_lock.fd) {
    if (--held_lock.depth > 0) return;
    held_lock.fd = -1;
  }
  close(fd);
}

static int sb_remove_locked(const struct front_ctx *ctx, const char *home, const char *name, const struct tstate *st, bool force,
                            bool json, bool *killed, struct timing tm[3], bool *had_timings);

/* Under the sandbox's lock, with its state read again under it: a start that ran meanwhile is seen (a plain rm then
 * refuses it), never undone from a stale state. */
int sb_remove(const struct front_ctx *ctx, const char *home, const char *name, const struct tstate *st, bool force, bool json,
              bool *killed, struct timing tm[3], bool *had_timings) {
  *killed = false;
  *had_timings = false;
  int lk = sb_lock(home, name);
  if (lk < 0) {
    if (errno == ENOENT) return front_mute ? 0 : sb_state_error(name, STATE_NOENT, json);
    char w[400];
    snprintf(w, sizeof w, "cannot lock sandbox %s", name);
    return front_sys_error(json, errno, w);
  }
  struct tstate now;
  int rr = st ? state_read(home, name, &now) : STATE_NOENT;
  int r = sb_remove_locked(ctx, home, name, rr == STATE_OK ? &now : st, force, json, killed, tm, had_timings);
  sb_unlock(lk);
  return r;
}

static int sb_remove_locked(const struct front_ctx *ctx, const char *home, const char *name, const struct tstate *st, bool force,
                            bool json, bool *killed, struct timing tm[3], bool *had_timings) {
  double t = now_ms();
  if (st && state_running(st)) {
    if (!force) {
      char msg[300], sug[300];
      snprintf(msg, sizeof msg, "sandbox %s is running", name);
      snprintf(sug, sizeof sug, "stop it first (velo sandbox stop %s) or use rm -f", name);
      return sb_err(json, "STATE", msg, sug);
    }
    *killed = true;
  }
  /* every process, the cgroups, the runtime's record: velo-runtime delete --force (also for a tenant whose state
   * is damaged: the runtime knows its container by name) */
  char err[2048];
  if (sb_rt_delete(ctx, home, name, err, sizeof err) < 0) {
    char msg[2200];
    snprintf(msg, sizeof msg, "cannot remove sandbox %s: %s", name, err);
    bool perm = strstr(err, "ermission denied") || strstr(err, "not permitted");
    return sb_err(json, perm ? "PERMISSION_DENIED" : "NATIVE", msg, perm ? SB_PERM_SUGGESTION : NULL);
  }
  tm[0] = (struct timing){"runtime", ms_since(t)};
  t = now_ms();
  /* no LMDB write: the tenant's state file is its gc hold (the caller left legacy LMDB holds to Node) */
  tm[1] = (struct timing){"hold", ms_since(t)};
  t = now_ms();
  /* move aside first (one rename), so a half-finished removal never looks like a live sandbox */
  char tdir[4200];
  snprintf(tdir, sizeof tdir, "%s/tenants", home);
  int dfd = open(tdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  char trash[300];
  snprintf(trash, sizeof trash, ".rm-%s-%d", name, (int)getpid());
  if (dfd < 0 || renameat(dfd, name, dfd, trash) < 0) {
    int e = errno;
    if (dfd >= 0) close(dfd);
    if (e == ENOENT) return 0;
    char w[400];
    snprintf(w, sizeof w, "cannot remove sandbox %s", name);
    return front_sys_error(json, e, w);
  }
  int r = sb_rm_tree(dfd, trash);
  int e = errno;
  close(dfd);
  if (r < 0) {
    char w[4600];
    snprintf(w, sizeof w, "cannot remove %s/%s", tdir, trash);
    return front_sys_error(json, e, w);
  }
  tm[2] = (struct timing){"files", ms_since(t)};
  *had_timings = true;
  event_emit(home, "sandbox", "rm", name, NULL, 0);
  return 0;
}

/* ---- exec ----------------------------------------------------------------------------------------- */

static bool user_is_root(const char *u) { return !u || !*u || !strcmp(u, "root") || !strcmp(u, "0") || !strcmp(u, "0:0"); }

bool sb_exec_servable(const struct tstate *s, const char *workdir, const char *user, const char *const *env, int n_env,
                      const char *const *argv, int argc) {
  const char *w = workdir ? workdir : s->workdir;
  if (!w || w[0] != '/' || strchr(w, '\n')) return false;
  if (!user_is_root(user ? user : s->user)) return false;
  for (int i = 0; i < n_env; i++)
    if (!env_ok(env[i])) return false;
  if (argc == 0) return false;
  (void)argv; /* any bytes but NUL: the process JSON carries them as they are */
  char mask[32];
  if (cap_mask(&s->caps, mask, sizeof mask) < 0) return false;
  if (strcmp(s->seccomp, "default") && strcmp(s->seccomp, "unconfined")) return false;
  return true;
}

/* ---- create --------------------------------------------------------------------------------------- */

/* parseBytes for the plain forms ("512m", "1g", "1048576"); anything else (fractions, "mib", spaces) → Node */
static int parse_bytes(const char *v, double *out) {
  size_t d = strspn(v, "0123456789");
  if (d == 0 || d > 12) return -1;
  double mult = 1;
  const char *u = v + d;
  if (*u) {
    switch (*u | 0x20) {
    case 'k': mult = 1024.0; break;
    case 'm': mult = 1024.0 * 1024; break;
    case 'g': mult = 1024.0 * 1024 * 1024; break;
    case 't': mult = 1024.0 * 1024 * 1024 * 1024; break;
    default: return -1;
    }
    if (u[1]) return -1;
  }
  double n = floor(strtod(v, NULL) * mult);
  if (n < 4 * 1024 * 1024 || n > 9007199254740991.0) return -1;
  *out = n;
  return 0;
}

static int parse_pids(const char *v, double *out) {
  size_t d = strspn(v, "0123456789");
  if (d == 0 || d > 7 || v[d]) return -1;
  double n = strtod(v, NULL);
  if (n < 8 || n > 4194304) return -1;
  *out = n;
  return 0;
}

static int parse_cpus(const char *v, double *out) {
  size_t d = strspn(v, "0123456789");
  if (d == 0 || d > 4) return -1;
  if (v[d] == '.') {
    size_t f = strspn(v + d + 1, "0123456789");
    if (f == 0 || f > 6 || v[d + 1 + f]) return -1;
  } else if (v[d])
    return -1;
  double n = strtod(v, NULL);
  if (!(n >= 0.01 && n <= 1024)) return -1;
  *out = n;
  return 0;
}

static void set_limit(struct tstate *s, const char *key, double v) {
  for (int i = 0; i < s->n_limits; i++)
    if (!strcmp(s->limits[i].key, key)) {
      s->limits[i].value = v;
      return;
    }
  s->limits[s->n_limits++] = (struct tlimit){key, v};
}

/* a path already in the form path.resolve / path.posix.normalize would give back unchanged */
static bool normal_abs_path(const char *p) {
  if (p[0] != '/' || strpbrk(p, "\n\t")) return false;
  if (!strcmp(p, "/")) return true;
  if (p[strlen(p) - 1] == '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../")) return false;
  size_t n = strlen(p);
  if ((n >= 2 && !strcmp(p + n - 2, "/.")) || (n >= 3 && !strcmp(p + n - 3, "/.."))) return false;
  return true;
}

static void timing(struct create_result *r, const char *k, double ms) { r->timings[r->n_timings++] = (struct timing){k, ms}; }

static int hostname_ok(const char *h) {
  size_t n = strlen(h);
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = h[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '-'))) return 0;
  }
  return 1;
}

/* the image record's config: user and workingDir as Node's `?? undefined` / `?? '/'` read them */
static int image_config(const char *json, struct tstate *s, const struct profile *p, struct strlist *img_env, bool runs_command) {
  json_object *root = json_tokener_parse(json), *cfg = NULL, *v;
  if (!root) return -1;
  int rc = -1;
  const char *user = NULL, *wd = NULL;
  if (json_object_object_get_ex(root, "config", &cfg) && json_object_is_type(cfg, json_type_object)) {
    /* an ENTRYPOINT goes before the command (src/sandbox/tenant.ts effectiveCommand): Node's to apply */
    if (runs_command && json_object_object_get_ex(cfg, "entrypoint", &v) && !json_object_is_type(v, json_type_null) &&
        !(json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0))
      goto out;
    if (json_object_object_get_ex(cfg, "user", &v) && !json_object_is_type(v, json_type_null)) {
      if (!json_object_is_type(v, json_type_string)) goto out;
      user = json_object_get_string(v);
    }
    if (json_object_object_get_ex(cfg, "workingDir", &v) && !json_object_is_type(v, json_type_null)) {
      if (!json_object_is_type(v, json_type_string)) goto out;
      wd = json_object_get_string(v);
    }
    if (json_object_object_get_ex(cfg, "env", &v) && !json_object_is_type(v, json_type_null)) {
      if (!json_object_is_type(v, json_type_array)) goto out;
      for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string)) goto out;
        const char *kv = json_object_get_string(e);
        if (!strchr(kv, '=') || strchr(kv, '\n') || (size_t)json_object_get_string_len(e) != strlen(kv)) goto out;
        if (strlist_push(img_env, kv) < 0) goto out;
      }
    }
  }
  const char *u = p->user ? p->user : user;
  if (u && (strchr(u, '\n') || !(s->user = strdup(u)))) goto out;
  const char *w = p->workdir ? p->workdir : wd ? wd : "/";
  if (strchr(w, '\n') || !(s->workdir = strdup(w))) goto out;
  rc = 0;
out:
  json_object_put(root);
  return rc;
}

static void strlist_free(struct strlist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int boot_claimed(const struct front_ctx *ctx, const char *home, struct tstate *s, bool json, struct create_result *r, int lock,
                        const char *tdir, double t0, double t);

int sb_create(const struct front_ctx *ctx, const char *home, const struct create_opts *o, bool json, create_check check,
              void *check_arg, struct create_result *r) {
  double t0 = now_ms(), t;
  memset(r, 0, sizeof *r);
  struct tstate *s = &r->st;
  const char *name = o->name;
  if (!name_valid(name)) return SB_FALLBACK;
  if (o->backend && strcmp(o->backend, "farm")) return SB_FALLBACK;
  struct profile p;
  if (profile_load_cached(ctx->pkgroot, home, o->profile ? o->profile : "default", &p) < 0) return SB_FALLBACK;
  memcpy(s->limits, p.limits, sizeof p.limits);
  s->n_limits = p.n_limits;
  double v;
  if (o->memory) {
    if (parse_bytes(o->memory, &v) < 0) return SB_FALLBACK;
    set_limit(s, "memory", v);
  }
  if (o->pids) {
    if (parse_pids(o->pids, &v) < 0) return SB_FALLBACK;
    set_limit(s, "pids", v);
  }
  if (o->cpus) {
    if (parse_cpus(o->cpus, &v) < 0) return SB_FALLBACK;
    set_limit(s, "cpus", v);
  }
  char hn[64];
  const char *hostname = o->hostname ? o->hostname : p.hostname;
  if (!hostname) {
    size_t i = 0;
    for (; name[i] && i < 63; i++) {
      char c = name[i];
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
      hn[i] = ok ? c : '-';
    }
    hn[i] = 0;
    hostname = hn;
  }
  if (!hostname_ok(hostname)) return SB_FALLBACK;
  struct strlist flag_env = {0};
  for (size_t i = 0; i < p.env.n; i++)
    if (env_merge(&flag_env, p.env.v[i]) < 0) return SB_FALLBACK;
  for (int i = 0; i < o->n_env; i++)
    if (!env_ok(o->env[i]) || env_merge(&flag_env, o->env[i]) < 0) return SB_FALLBACK;
  s->n_mounts = p.n_mounts + (size_t)o->n_mounts;
  s->mounts = calloc(s->n_mounts + 1, sizeof *s->mounts);
  if (!s->mounts) return SB_FALLBACK;
  memcpy(s->mounts, p.mounts, p.n_mounts * sizeof *p.mounts);
  for (int i = 0; i < o->n_mounts; i++) {
    /* parseMount: only SRC:DST[:ro|rw] whose paths are already absolute and normal; SRC must exist */
    char *spec = strdup(o->mounts[i]);
    if (!spec) return SB_FALLBACK;
    char *f[4] = {0};
    int n = 0;
    for (char *c = spec, *save = NULL; n < 4 && (c = strsep(&spec, ":"));) f[n++] = c, (void)save;
    if (spec || n < 2 || n > 3 || (n == 3 && strcmp(f[2], "ro") && strcmp(f[2], "rw"))) return SB_FALLBACK;
    if (!normal_abs_path(f[0]) || !normal_abs_path(f[1]) || strstr(f[0], "/..") || strstr(f[1], "/..")) return SB_FALLBACK;
    struct stat st;
    if (stat(f[0], &st) < 0) return SB_FALLBACK;
    s->mounts[p.n_mounts + (size_t)i] = (struct tmount){f[0], f[1], n == 3 && !strcmp(f[2], "ro"), NULL};
  }
  if (cgroup_dirs(home, name, &s->cgroups) < 0) return SB_FALLBACK;
  /* $VELO_CGROUP_ROOT with a newline: Node refuses it (after the claim) */
  for (size_t i = 0; i < s->cgroups.n; i++)
    if (strchr(s->cgroups.v[i], '\n')) return SB_FALLBACK;
  timing(r, "parse", ms_since(t0));

  /* The image, its farms and the claim, under the store's shared lock: gc (exclusive) cannot sweep a farm
   * or object between our check and the moment state.json — this tenant's gc hold — names its layers. */
  t = now_ms();
  char lockp[4200];
  snprintf(lockp, sizeof lockp, "%s/lock", home);
  cleanup_fd int lock = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock < 0) return SB_FALLBACK;
  while (flock(lock, LOCK_SH) < 0)
    if (errno != EINTR) return SB_FALLBACK;
  const char *image = o->image ? o->image : "default";
  struct velo_store store;
  struct velo_err e = {0};
  char *rec = NULL;
  if (velo_store_open(&store, home, &e) < 0) return SB_FALLBACK;
  int found = velo_image_get(&store, image, &rec, &e);
  velo_store_close(&store);
  if (found <= 0) return SB_FALLBACK; /* no such image (or the default one not built yet): Node */
  json_object *root = json_tokener_parse(rec), *layers;
  if (!root || !json_object_object_get_ex(root, "layers", &layers) || !json_object_is_type(layers, json_type_array)) return SB_FALLBACK;
  s->layers.v = calloc(1, sizeof(char *));
  s->lowers.v = calloc(1, sizeof(char *));
  for (size_t i = 0; i < json_object_array_length(layers); i++) {
    json_object *l = json_object_array_get_idx(layers, i);
    const char *id = json_object_is_type(l, json_type_string) ? json_object_get_string(l) : "";
    if (strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64 || strlist_push(&s->layers, id) < 0) return SB_FALLBACK;
  }
  json_object_put(root);
  struct strlist img_env = {0};
  if (image_config(rec, s, &p, &img_env, o->runs_command || o->main_argc > 0) < 0) return SB_FALLBACK;
  timing(r, "image", ms_since(t));
  t = now_ms();
  for (size_t i = s->layers.n; i-- > 0;) {
    char farm[4300];
    snprintf(farm, sizeof farm, "%s/farms/%s", home, s->layers.v[i]);
    struct stat st;
    if (stat(farm, &st) < 0) return SB_FALLBACK; /* Node builds it */
    if (strlist_push(&s->lowers, farm) < 0) return SB_FALLBACK;
  }
  timing(r, "farms", ms_since(t));
  s->name = strdup(name);
  s->image = strdup(image);
  s->profile = strdup(p.name);
  s->hostname = strdup(hostname);
  s->network = strdup(p.network);
  /* --network and -p as src/network/networks.ts reads them; anything else (the default network not made yet, an
   * unknown one, a bad -p, no root) is Node's to say */
  if (o->network) {
    bool mode = !strcmp(o->network, "loopback") || !strcmp(o->network, "none");
    if (!mode) {
      if (geteuid() != 0 || !network_name_ok(o->network)) return SB_FALLBACK;
      char rec[4400];
      struct stat nst;
      snprintf(rec, sizeof rec, "%s/networks/%s.conflist", home, o->network);
      if (stat(rec, &nst) < 0) return SB_FALLBACK;
      snprintf(rec, sizeof rec, "%s/networks/%s.json", home, o->network);
      if (stat(rec, &nst) < 0) return SB_FALLBACK;
    }
    free(s->network);
    s->network = strdup(o->network);
  }
  if (o->n_publish) {
    if (!strcmp(s->network, "loopback") || !strcmp(s->network, "none")) return SB_FALLBACK;
    s->ports = calloc((size_t)o->n_publish, sizeof *s->ports);
    if (!s->ports) return SB_FALLBACK;
    for (int i = 0; i < o->n_publish; i++)
      if (parse_publish(o->publish[i], &s->ports[i]) < 0) return SB_FALLBACK;
    s->n_ports = (size_t)o->n_publish;
  }
  s->seccomp = strdup(p.seccomp);
  s->userns = p.userns;
  if (o->userns && !strcmp(o->userns, "private")) s->userns = true;
  else if (o->userns && !strcmp(o->userns, "host")) s->userns = false;
  else if (o->userns) return SB_FALLBACK; /* Node says what is wrong */
  if (!s->userns && geteuid() != 0) return SB_FALLBACK; /* Node: only root may opt out */
  s->caps = p.caps;
  s->env.v = calloc(1, sizeof(char *));
  if (env_merge(&s->env, DEFAULT_PATH) < 0 || env_merge(&s->env, "HOME=/root") < 0) return SB_FALLBACK;
  for (size_t i = 0; i < img_env.n; i++)
    if (env_merge(&s->env, img_env.v[i]) < 0) return SB_FALLBACK;
  for (size_t i = 0; i < flag_env.n; i++)
    if (env_merge(&s->env, flag_env.v[i]) < 0) return SB_FALLBACK;
  strlist_free(&img_env);
  strlist_free(&flag_env);
  if (o->main_argc > 0) {
    /* the main command's plan as Node fixes it at create: root (a named user needs the tenant's passwd: Node),
     * env [], the default log options */
    if (!user_is_root(o->main_user ? o->main_user : s->user)) return SB_FALLBACK;
    if (o->main_workdir && (o->main_workdir[0] != '/' || strchr(o->main_workdir, '\n'))) return SB_FALLBACK;
    for (int i = 0; i < o->main_argc; i++)
      if (strlist_push(&s->main_argv, o->main_argv[i]) < 0) return SB_FALLBACK;
    if (o->main_workdir && !(s->main_workdir = strdup(o->main_workdir))) return SB_FALLBACK;
    s->has_main = true;
    s->log_max_size = WORKLOAD_LOG_MAX_SIZE;
    s->log_max_files = WORKLOAD_LOG_MAX_FILES;
    s->auto_remove = o->auto_remove;
  } else if (o->main_user || o->main_workdir || o->auto_remove)
    return SB_FALLBACK; /* Node: about a main command, and none was given */
  char mask[32];
  if (cap_mask(&s->caps, mask, sizeof mask) < 0) return SB_FALLBACK;
  if (check && check(s, check_arg) == SB_FALLBACK) return SB_FALLBACK;
  r->profile_name = s->profile;

  /* Claim the name: mkdir is atomic, so of two racing creates exactly one gets here. */
  t = now_ms();
  char tdir[4200], dir[4300];
  snprintf(tdir, sizeof tdir, "%s/tenants", home);
  snprintf(dir, sizeof dir, "%s/%s", tdir, name);
  if (mkdir(tdir, 0700) < 0 && errno != EEXIST) return SB_FALLBACK;
  if (mkdir(dir, 0700) < 0) {
    char msg[400], sug[400];
    if (errno == EEXIST) {
      snprintf(msg, sizeof msg, "a sandbox named %s already exists", name);
      snprintf(sug, sizeof sug, "pick another name, or remove it first: velo sandbox rm -f %s", name);
      return sb_err(json, "ALREADY_EXISTS", msg, sug);
    }
    int en = errno;
    snprintf(msg, sizeof msg, "cannot create sandbox %s", name);
    return front_sys_error(json, en, msg);
  }
  /* ours until it is booted: a start or rm of the name waits (sb_lock) */
  int lk = sb_lock(home, name);
  if (lk < 0) {
    int en = errno;
    char msg[400];
    snprintf(msg, sizeof msg, "cannot lock sandbox %s", name);
    return front_sys_error(json, en, msg);
  }
  int rc = boot_claimed(ctx, home, s, json, r, lock, tdir, t0, t);
  sb_unlock(lk);
  return rc;
}

/* sb_create once the name is claimed (and locked): the state, the event, the boot */
static int boot_claimed(const struct front_ctx *ctx, const char *home, struct tstate *s, bool json, struct create_result *r, int lock,
                        const char *tdir, double t0, double t) {
  const char *name = s->name;
  char now[40];
  iso_now(now, sizeof now);
  s->created_at = strdup(now);
  if (state_write(home, s) < 0) {
    int en = errno;
    int dfd = open(tdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      /* renamed aside first, as rm does: a call waiting on its lock file cannot make it again in a dir being emptied */
      char trash[300];
      snprintf(trash, sizeof trash, ".rm-%s-%d", name, (int)getpid());
      if (renameat(dfd, name, dfd, trash) == 0) sb_rm_tree(dfd, trash);
      close(dfd);
    }
    char msg[400];
    snprintf(msg, sizeof msg, "cannot write state of sandbox %s", name);
    return front_sys_error(json, en, msg);
  }
  flock(lock, LOCK_UN);
  timing(r, "claim", ms_since(t));
  char imgattr[600];
  snprintf(imgattr, sizeof imgattr, "image=%s", s->image);
  const char *attrs[] = {imgattr};
  event_emit(home, "sandbox", "create", name, attrs, 1);

  /* boot: the bundle's config.json, velo-runtime create + start (namespaces, cgroups, mounts, velo-init) */
  t = now_ms();
  char err[2048];
  if (sb_boot(ctx, home, s, false, err, sizeof err) < 0) {
    cleanup_tenant(ctx, home, name, s);
    char msg[2300];
    const char *sug = NULL, *code = sb_err_split(err, &sug);
    snprintf(msg, sizeof msg, "cannot start sandbox: %s", err);
    if (code) return sb_err(json, code, msg, sug);
    bool perm = strstr(err, "Operation not permitted") || strstr(err, "Permission denied");
    return sb_err(json, perm ? "PERMISSION_DENIED" : "NATIVE", msg, perm ? SB_PERM_SUGGESTION : NULL);
  }
  timing(r, "runtime", ms_since(t));
  iso_now(now, sizeof now);
  s->started_at = strdup(now);
  if (state_write(home, s) < 0) {
    int en = errno;
    cleanup_tenant(ctx, home, name, s);
    char msg[400];
    snprintf(msg, sizeof msg, "cannot write state of sandbox %s", name);
    return front_sys_error(json, en, msg);
  }
  timing(r, "total", ms_since(t0));
  return 0;
}
