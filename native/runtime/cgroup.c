/* cgroup.c: the container's cgroup(s) on cgroup v1 (one dir per mounted hierarchy, as on hybrid hosts) and on
 * pure cgroup v2 (one dir): linux.cgroupsPath, every field of linux.resources, join, freeze, kill, pids, removal.
 *
 * Placement (compatible with runc's cgroupfs driver, the reference):
 *   absent        -> /velo-runtime/<id> below each hierarchy root
 *   absolute      -> below each hierarchy root (Docker "/docker/<id>", containerd "/<ns>/<id>",
 *                    Podman "/libpod_parent/libpod-<id>")
 *   relative      -> below the caller's own cgroup of that hierarchy (v2: below its parent, because the caller's
 *                    own cgroup holds processes and so cannot enable controllers for children), as runc does
 * The hierarchies live under $VELO_CGROUP_ROOT (default /sys/fs/cgroup).
 *
 * Resources follow runc's conventions: zero or absent means "leave unset" (Docker sends zeros for what the
 * user did not set), -1 means unlimited where the kernel has such a value. Everything is validated (types,
 * controllers present, files available) by plan() before any side effect, and a field this host cannot honour
 * is an error that names it. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>

#include "runtime.h"

#define RES "linux.resources"

static const char *cg_root(void) {
  const char *r = getenv("VELO_CGROUP_ROOT");
  return r && *r ? r : "/sys/fs/cgroup";
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- small file helpers (cgroup files: one write() per value, the kernel parses each write whole) */

static int write_str(const char *dir, const char *file, const char *val) {
  char p[4352];
  if (snprintf(p, sizeof p, "%s/%s", dir, file) >= (int)sizeof p) return errno = ENAMETOOLONG, -1;
  cleanup_fd int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = strlen(val);
  ssize_t w = write(fd, val, n);
  if (w < 0) return -1;
  if ((size_t)w != n) return errno = EIO, -1;
  return 0;
}

/* The whole file, NUL-terminated and without its trailing newline; NULL with errno on failure. */
static char *read_str(const char *dir, const char *file) {
  char p[4352];
  if (snprintf(p, sizeof p, "%s/%s", dir, file) >= (int)sizeof p) return errno = ENAMETOOLONG, NULL;
  cleanup_fd int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  for (;;) {
    if (len + 1 >= cap) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) return free(buf), NULL;
      buf = nb;
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      free(buf);
      errno = err;
      return NULL;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) len--;
  buf[len] = 0;
  return buf;
}

static bool file_exists(const char *dir, const char *file) {
  char p[4352];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  return access(p, F_OK) == 0;
}

static bool word_in(const char *list, const char *word, const char *seps) {
  size_t wl = strlen(word);
  for (const char *s = list; s && *s;) {
    size_t l = strcspn(s, seps);
    if (l == wl && !strncmp(s, word, wl)) return true;
    s += l;
    s += strspn(s, seps);
  }
  return false;
}

/* ---- paths */

/* "/a//b/./c/" -> "/a/b/c"; refuses ".." (a cgroupsPath must not climb out of the hierarchy). Output absolute. */
static int clean_path(const char *in, char *out, size_t outsz) {
  size_t o = 0;
  out[0] = 0;
  for (const char *s = in; *s;) {
    while (*s == '/') s++;
    size_t l = strcspn(s, "/");
    if (!l) break;
    if (l == 2 && s[0] == '.' && s[1] == '.') return -1;
    if (!(l == 1 && s[0] == '.')) {
      if (o + 1 + l + 1 > outsz) return -2;
      out[o++] = '/';
      memcpy(out + o, s, l);
      o += l;
      out[o] = 0;
    }
    s += l;
  }
  if (!o) snprintf(out, outsz, "/");
  return 0;
}

static char *join2(const char *a, const char *b) {
  char *r;
  if (!strcmp(b, "/")) b = "";
  if (!strcmp(a, "/") && *b) a = "";
  if (asprintf(&r, "%s%s", a, b) < 0) return NULL;
  return r;
}

/* mountinfo escapes spaces etc. as \ooo */
static void unescape(char *s) {
  char *o = s;
  for (char *p = s; *p;) {
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
      *o++ = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
      p += 4;
    } else
      *o++ = *p++;
  }
  *o = 0;
}

struct mnt {
  char mountpoint[4096];
  char root[4096];
  char fstype[32];
  char controllers[512];
  unsigned major, minor;
};

/* v1 controller names (and name=X) from a cgroup mount's super options, dropping the real options. */
static void v1_controllers(const char *superopts, char *out, size_t outsz) {
  static const char *const opts[] = {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods", "none", NULL};
  out[0] = 0;
  size_t o = 0;
  for (const char *s = superopts; *s;) {
    size_t l = strcspn(s, ",");
    bool skip = !strncmp(s, "release_agent=", 14) || l == 0;
    for (const char *const *p = opts; *p && !skip; p++)
      if (strlen(*p) == l && !strncmp(*p, s, l)) skip = true;
    if (!skip && o + l + 2 < outsz) {
      if (o) out[o++] = ',';
      memcpy(out + o, s, l);
      o += l;
      out[o] = 0;
    }
    s += l;
    if (*s == ',') s++;
  }
}

/* Every cgroup/cgroup2 mount whose mountpoint is `root` or a direct child of it; *n mounts. */
static int list_mounts(const char *root, struct mnt **out, size_t *n, struct velo_err *e) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return VELO_FAIL_ERRNO(e, "open /proc/self/mountinfo");
  char *line = NULL;
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  size_t rl = strlen(root);
  while (getline(&line, &cap, f) > 0) {
    char *sep = strstr(line, " - ");
    if (!sep) continue;
    *sep = 0;
    char *fields[6] = {0}, *save = NULL, *tok = strtok_r(line, " ", &save);
    for (int i = 0; tok && i < 6; i++, tok = strtok_r(NULL, " ", &save)) fields[i] = tok;
    char *fst = strtok_r(sep + 3, " \n", &save), *src = strtok_r(NULL, " \n", &save), *sopts = strtok_r(NULL, " \n", &save);
    (void)src;
    if (!fields[4] || !fst || !sopts) continue;
    if (strcmp(fst, "cgroup") && strcmp(fst, "cgroup2")) continue;
    unescape(fields[3]);
    unescape(fields[4]);
    const char *mp = fields[4];
    bool at_root = !strcmp(mp, root);
    bool child = !strncmp(mp, root, rl) && mp[rl] == '/' && mp[rl + 1] && !strchr(mp + rl + 1, '/');
    if (!strcmp(root, "/")) child = mp[0] == '/' && mp[1] && !strchr(mp + 1, '/');
    if (!at_root && !child) continue;
    struct mnt m = {0};
    snprintf(m.mountpoint, sizeof m.mountpoint, "%s", mp);
    snprintf(m.root, sizeof m.root, "%s", fields[3]);
    snprintf(m.fstype, sizeof m.fstype, "%s", fst);
    sscanf(fields[2], "%u:%u", &m.major, &m.minor);
    if (!strcmp(fst, "cgroup")) v1_controllers(sopts, m.controllers, sizeof m.controllers);
    /* a hierarchy mounted twice (bind mounts): keep the first, later mounts over it would hide it anyway */
    bool dup = false;
    for (size_t i = 0; i < *n; i++)
      if ((*out)[i].major == m.major && (*out)[i].minor == m.minor) dup = true;
    if (dup) continue;
    struct mnt *nm = realloc(*out, (*n + 1) * sizeof *nm);
    if (!nm) {
      free(line);
      fclose(f);
      return VELO_FAIL_ERRNO(e, "out of memory");
    }
    *out = nm;
    (*out)[(*n)++] = m;
  }
  free(line);
  fclose(f);
  return 0;
}

/* The caller's own cgroup in the hierarchy with these controllers ("" = the v2 tree), from /proc/self/cgroup. */
static int own_cgroup(const char *controllers, char *out, size_t outsz, struct velo_err *e) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f) return VELO_FAIL_ERRNO(e, "open /proc/self/cgroup");
  char *line = NULL;
  size_t cap = 0;
  int found = 0;
  while (!found && getline(&line, &cap, f) > 0) {
    line[strcspn(line, "\n")] = 0;
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c2 = 0;
    const char *ctl = c1 + 1;
    bool same;
    if (!*controllers)
      same = !*ctl && !strncmp(line, "0:", 2);
    else {
      /* same set of names, whatever the order */
      same = *ctl != 0;
      char tmp[512];
      snprintf(tmp, sizeof tmp, "%s", ctl);
      for (char *s = NULL, *t = strtok_r(tmp, ",", &s); t && same; t = strtok_r(NULL, ",", &s))
        if (!word_in(controllers, t, ",")) same = false;
      snprintf(tmp, sizeof tmp, "%s", controllers);
      for (char *s = NULL, *t = strtok_r(tmp, ",", &s); t && same; t = strtok_r(NULL, ",", &s))
        if (!word_in(ctl, t, ",")) same = false;
    }
    if (same) {
      snprintf(out, outsz, "%s", c2 + 1);
      found = 1;
    }
  }
  free(line);
  fclose(f);
  if (!found) return velo_fail(e, 0, "cgroup: the caller's cgroup for %s is not in /proc/self/cgroup", *controllers ? controllers : "the v2 hierarchy");
  return 0;
}

/* ---- struct oci_cgroup */

void oci_cgroup_free(struct oci_cgroup *cg) {
  if (!cg) return;
  for (size_t i = 0; i < cg->n; i++) {
    free(cg->h[i].controllers);
    free(cg->h[i].mountpoint);
    free(cg->h[i].path);
    free(cg->h[i].rel);
  }
  free(cg->h);
  cg->h = NULL;
  cg->n = 0;
}

static int add_hier(struct oci_cgroup *cg, const char *controllers, const char *mountpoint, const char *rel, struct velo_err *e) {
  struct cg_hier *nh = realloc(cg->h, (cg->n + 1) * sizeof *nh);
  if (!nh) return VELO_FAIL_ERRNO(e, "out of memory");
  cg->h = nh;
  struct cg_hier *h = &cg->h[cg->n];
  h->controllers = strdup(controllers);
  h->mountpoint = strdup(mountpoint);
  h->rel = strdup(rel);
  h->path = join2(mountpoint, rel);
  cg->n++;
  if (!h->controllers || !h->mountpoint || !h->rel || !h->path) return VELO_FAIL_ERRNO(e, "out of memory");
  return 0;
}

/* The hierarchy holding controller ctl (v2: the one dir), or NULL. */
static const struct cg_hier *hier_of(const struct oci_cgroup *cg, const char *ctl) {
  if (cg->v2) return cg->n ? &cg->h[0] : NULL;
  for (size_t i = 0; i < cg->n; i++)
    if (word_in(cg->h[i].controllers, ctl, ",")) return &cg->h[i];
  return NULL;
}

/* The hierarchy whose cgroup.procs lists the container's processes: v1 prefers pids, then memory. */
static const struct cg_hier *main_hier(const struct oci_cgroup *cg) {
  const struct cg_hier *h = NULL;
  if (!cg->v2) {
    h = hier_of(cg, "pids");
    if (!h) h = hier_of(cg, "memory");
  }
  return h ? h : (cg->n ? &cg->h[0] : NULL);
}

/* ---- linux.resources: one walk that validates (apply = false, in plan/update before any change) or writes
 * (apply = true). Keeping both in one function means a field cannot be validated one way and applied another. */

struct rctx {
  const struct oci_cgroup *cg;
  bool apply;
  bool update;          /* `update`: checkBeforeUpdate applies */
  char v2ctl[512];      /* v2: controllers available at the hierarchy root */
  struct velo_err *e;
};

/* The controller must exist on this host (and, on v1, the file in its hierarchy root, where every file of a
 * mounted controller shows). file may be NULL. */
static int need(struct rctx *c, const char *ctl, const char *file, const char *where, const char *key) {
  if (c->cg->v2) {
    if (!word_in(c->v2ctl, ctl, " ")) return cfg_fail(c->e, where, key, "the cgroup v2 %s controller is not available on this host", ctl);
    return 0;
  }
  const struct cg_hier *h = hier_of(c->cg, ctl);
  if (!h) return cfg_fail(c->e, where, key, "the cgroup v1 %s controller is not mounted on this host", ctl);
  if (!file) return 0;
  /* look in the deepest existing dir on the way to the container's (after create: that dir itself). The root
   * lacks a few files (pids.max, blkio.bfq.weight, rdma.max): there, a missing file is only found at create
   * time, where the write fails naming the field and create undoes itself. */
  char d[4352];
  snprintf(d, sizeof d, "%s", h->path);
  size_t ml = strlen(h->mountpoint);
  while (strlen(d) > ml && access(d, F_OK) < 0) {
    char *sl = strrchr(d, '/');
    if (!sl) break;
    *sl = 0;
  }
  if (!file_exists(d, file) && strlen(d) > ml) return cfg_fail(c->e, where, key, "%s is not available on this host (the kernel has no such control)", file);
  return 0;
}

static int wr(struct rctx *c, const char *ctl, const char *file, const char *val, const char *where, const char *key) {
  if (!c->apply) return 0;
  const struct cg_hier *h = hier_of(c->cg, ctl);
  if (!h) return cfg_fail(c->e, where, key, "no %s hierarchy", ctl);
  if (write_str(h->path, file, val) < 0) {
    if (errno == ENOENT && access(h->path, F_OK) == 0) return cfg_fail(c->e, where, key, "%s is not available on this host (the kernel has no such control)", file);
    return velo_fail(c->e, errno, "config.json: %s.%s: cannot write \"%s\" to %s/%s", where, key, val, h->path, file);
  }
  return 0;
}

static int wr_i64(struct rctx *c, const char *ctl, const char *file, int64_t v, const char *where, const char *key) {
  char b[32];
  snprintf(b, sizeof b, "%" PRId64, v);
  return wr(c, ctl, file, b, where, key);
}

/* -1 = unlimited, 0 = unset, > 0 a value; anything else is an error. Returns 1 when absent. */
static int limit_i64(struct rctx *c, json_object *o, const char *key, const char *where, int64_t *v) {
  int r = cfg_i64(o, key, where, v, c->e);
  if (r == 0 && *v < -1) return cfg_fail(c->e, where, key, "expected -1 (unlimited), 0 (unset) or a positive integer");
  return r;
}

static int check_int_range(struct rctx *c, json_object *o, const char *key, const char *where, int64_t lo, int64_t hi, int64_t *v) {
  int r = cfg_i64(o, key, where, v, c->e);
  if (r == 0 && (*v < lo || *v > hi)) return cfg_fail(c->e, where, key, "expected an integer from %" PRId64 " to %" PRId64, lo, hi);
  return r;
}

static int kernel_at_least(int maj, int min) {
  struct utsname u;
  int a = 0, b = 0;
  if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &a, &b) != 2) return 0;
  return a > maj || (a == maj && b >= min);
}

static int res_memory(struct rctx *c, json_object *m) {
  const char *W = RES ".memory";
  static const char *const keys[] = {"limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy", "checkBeforeUpdate", NULL};
  if (cfg_only_keys(m, W, keys, c->e) < 0) return -1;
  int64_t limit = 0, resv = 0, swap = 0, kern = 0, ktcp = 0, swappiness = -1;
  bool oom = false, hier = true, check = false;
  int r_lim, r_oom, r_hier;
  if ((r_lim = limit_i64(c, m, "limit", W, &limit)) < 0 || limit_i64(c, m, "reservation", W, &resv) < 0 || limit_i64(c, m, "swap", W, &swap) < 0 ||
      limit_i64(c, m, "kernel", W, &kern) < 0 || limit_i64(c, m, "kernelTCP", W, &ktcp) < 0 || (r_oom = cfg_bool(m, "disableOOMKiller", W, &oom, c->e)) < 0 ||
      (r_hier = cfg_bool(m, "useHierarchy", W, &hier, c->e)) < 0 || cfg_bool(m, "checkBeforeUpdate", W, &check, c->e) < 0)
    return -1;
  /* swappiness is a uint64 in the spec, but old Docker sends -1 for "unset"; runc treats -1 so too */
  json_object *sw = cfg_get(m, "swappiness");
  if (sw) {
    if (!json_object_is_type(sw, json_type_int)) return cfg_fail(c->e, W, "swappiness", "expected an integer");
    int64_t s = json_object_get_int64(sw);
    uint64_t u = json_object_get_uint64(sw);
    if (s == -1 || (s == INT64_MAX && u == UINT64_MAX)) swappiness = -1;
    else if (s < 0 || s > 100) return cfg_fail(c->e, W, "swappiness", "expected an integer from 0 to 100");
    else swappiness = s;
  }
  const char *first = NULL; /* the field to name when the memory controller is missing */
  json_object_object_foreach(m, k, v) if (v && !first) first = k;
  if (first && need(c, "memory", NULL, W, first) < 0) return -1;
  if (kern > 0 && (c->cg->v2 || kernel_at_least(6, 1))) {
    /* v1 kmem limits became a no-op in Linux 6.1 (the write succeeds and changes nothing); v2 never had them.
     * There, kernel memory is charged to the memory counter itself, so memory.limit bounds it: a kernel limit at
     * or above the memory limit is already honoured and is left out; a stricter one cannot be, and is refused. */
    if (limit <= 0 || kern < limit)
      return cfg_fail(c->e, W, "kernel", "a kernel memory limit below linux.resources.memory.limit is not supported by this kernel (kernel memory counts against memory.limit)");
    kern = 0;
  } else if (kern > 0 && need(c, "memory", "memory.kmem.limit_in_bytes", W, "kernel") < 0) {
    return -1;
  }
  if (ktcp) {
    if (c->cg->v2) return cfg_fail(c->e, W, "kernelTCP", "not supported on cgroup v2");
    if (need(c, "memory", "memory.kmem.tcp.limit_in_bytes", W, "kernelTCP") < 0) return -1;
  }
  if (swappiness >= 0 && c->cg->v2) return cfg_fail(c->e, W, "swappiness", "not supported on cgroup v2");
  if (r_oom == 0 && oom && c->cg->v2) return cfg_fail(c->e, W, "disableOOMKiller", "not supported on cgroup v2");
  if (r_hier == 0 && !hier && c->cg->v2) return cfg_fail(c->e, W, "useHierarchy", "cgroup v2 is always hierarchical");

  /* checkBeforeUpdate: do not set a limit below the current usage (only meaningful for `update`) */
  if (c->update && check && limit > 0) {
    const struct cg_hier *h = hier_of(c->cg, "memory");
    cleanup_free char *u = h ? read_str(h->path, c->cg->v2 ? "memory.current" : "memory.usage_in_bytes") : NULL;
    if (u && strtoll(u, NULL, 10) > limit) return cfg_fail(c->e, W, "limit", "%" PRId64 " is below the current usage %s (checkBeforeUpdate)", limit, u);
  }

  if (c->cg->v2) {
    /* spec swap = memory+swap; v2 memory.swap.max = swap alone (runc's conversion) */
    if (swap) {
      int64_t sv;
      if (swap == -1 || limit == -1) sv = -1;
      else if (limit == 0) return cfg_fail(c->e, W, "swap", "a swap limit needs a memory limit on cgroup v2");
      else if (swap < limit) return cfg_fail(c->e, W, "swap", "memory+swap (%" PRId64 ") must not be below memory.limit (%" PRId64 ")", swap, limit);
      else sv = swap - limit;
      if (c->apply) {
        const struct cg_hier *h = hier_of(c->cg, "memory");
        if (!file_exists(h->path, "memory.swap.max")) return cfg_fail(c->e, W, "swap", "memory.swap.max is not available (no swap accounting)");
      }
      if (sv == -1 ? wr(c, "memory", "memory.swap.max", "max", W, "swap") : wr_i64(c, "memory", "memory.swap.max", sv, W, "swap")) return -1;
    }
    if (limit && (limit == -1 ? wr(c, "memory", "memory.max", "max", W, "limit") : wr_i64(c, "memory", "memory.max", limit, W, "limit"))) return -1;
    if (resv && (resv == -1 ? wr(c, "memory", "memory.low", "max", W, "reservation") : wr_i64(c, "memory", "memory.low", resv, W, "reservation"))) return -1;
    return 0;
  }

  /* v1 */
  /* unlimited memory: unlimited memory+swap too, as runc (where swap is accounted at all) */
  const struct cg_hier *mh = hier_of(c->cg, "memory");
  if (limit == -1 && swap == 0 && r_lim == 0 && mh && file_exists(mh->mountpoint, "memory.memsw.limit_in_bytes")) swap = -1;
  if (swap && need(c, "memory", "memory.memsw.limit_in_bytes", W, "swap") < 0) return -1;
  if (swap > 0 && limit > 0 && swap < limit)
    return cfg_fail(c->e, W, "swap", "memory+swap (%" PRId64 ") must not be below memory.limit (%" PRId64 ")", swap, limit);
  /* memsw must stay >= limit at every step: raise memsw first when the new limit exceeds the current memsw */
  bool swap_first = false;
  if (c->apply && limit && swap) {
    const struct cg_hier *h = hier_of(c->cg, "memory");
    cleanup_free char *cur = read_str(h->path, "memory.limit_in_bytes");
    swap_first = swap == -1 || (cur && strtoull(cur, NULL, 10) < (uint64_t)swap);
  }
  if (swap_first && wr_i64(c, "memory", "memory.memsw.limit_in_bytes", swap, W, "swap") < 0) return -1;
  if (limit && wr_i64(c, "memory", "memory.limit_in_bytes", limit, W, "limit") < 0) return -1;
  if (swap && !swap_first && wr_i64(c, "memory", "memory.memsw.limit_in_bytes", swap, W, "swap") < 0) return -1;
  if (resv && wr_i64(c, "memory", "memory.soft_limit_in_bytes", resv, W, "reservation") < 0) return -1;
  if (kern > 0 && wr_i64(c, "memory", "memory.kmem.limit_in_bytes", kern, W, "kernel") < 0) return -1;
  if (ktcp && wr_i64(c, "memory", "memory.kmem.tcp.limit_in_bytes", ktcp, W, "kernelTCP") < 0) return -1;
  if (swappiness >= 0 && wr_i64(c, "memory", "memory.swappiness", swappiness, W, "swappiness") < 0) return -1;
  if (r_oom == 0 && (oom || c->update) && wr(c, "memory", "memory.oom_control", oom ? "1" : "0", W, "disableOOMKiller") < 0) return -1;
  if (r_hier == 0 && wr(c, "memory", "memory.use_hierarchy", hier ? "1" : "0", W, "useHierarchy") < 0) return -1;
  return 0;
}

/* cpuset lists: "0-3,5" */
static int cpulist_ok(const char *s) {
  if (!*s) return 0;
  for (const char *p = s; *p; p++)
    if (!isdigit((unsigned char)*p) && *p != ',' && *p != '-') return 0;
  return 1;
}

static int res_cpu(struct rctx *c, json_object *o) {
  const char *W = RES ".cpu";
  static const char *const keys[] = {"shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle", NULL};
  if (cfg_only_keys(o, W, keys, c->e) < 0) return -1;
  uint64_t shares = 0, period = 0, burst = 0, rtperiod = 0;
  int64_t quota = 0, rtrun = 0, idle = 0;
  const char *cpus = NULL, *mems = NULL;
  int r_burst, r_idle;
  if (cfg_u64(o, "shares", W, &shares, c->e) < 0 || limit_i64(c, o, "quota", W, &quota) < 0 || (r_burst = cfg_u64(o, "burst", W, &burst, c->e)) < 0 ||
      cfg_u64(o, "period", W, &period, c->e) < 0 || limit_i64(c, o, "realtimeRuntime", W, &rtrun) < 0 || cfg_u64(o, "realtimePeriod", W, &rtperiod, c->e) < 0 ||
      cfg_str(o, "cpus", W, &cpus, c->e) < 0 || cfg_str(o, "mems", W, &mems, c->e) < 0 || (r_idle = check_int_range(c, o, "idle", W, 0, 1, &idle)) < 0)
    return -1;
  if (cpus && *cpus && !cpulist_ok(cpus)) return cfg_fail(c->e, W, "cpus", "expected a CPU list such as \"0-2,4\"");
  if (mems && *mems && !cpulist_ok(mems)) return cfg_fail(c->e, W, "mems", "expected a memory node list such as \"0\"");
  if (cpus && !*cpus) cpus = NULL;
  if (mems && !*mems) mems = NULL;
  if (period && (period < 1000 || period > 1000000)) return cfg_fail(c->e, W, "period", "expected 1000 to 1000000 microseconds");
  if (quota > 0 && quota < 1000) return cfg_fail(c->e, W, "quota", "expected -1, 0 or at least 1000 microseconds");

  if (c->cg->v2) {
    if (rtrun || rtperiod) return cfg_fail(c->e, W, rtrun ? "realtimeRuntime" : "realtimePeriod", "real-time scheduling limits are not supported on cgroup v2");
    if ((shares || quota || period || r_burst == 0 || r_idle == 0) && need(c, "cpu", NULL, W, shares ? "shares" : quota ? "quota" : period ? "period" : r_burst == 0 ? "burst" : "idle") < 0) return -1;
    if ((cpus || mems) && need(c, "cpuset", NULL, W, cpus ? "cpus" : "mems") < 0) return -1;
    if (shares) {
      if (shares < 2 || shares > 262144) return cfg_fail(c->e, W, "shares", "expected 2 to 262144");
      /* runc's mapping of [2, 262144] onto cpu.weight's [1, 10000] */
      if (wr_i64(c, "cpu", "cpu.weight", (int64_t)(1 + ((shares - 2) * 9999) / 262142), W, "shares") < 0) return -1;
    }
    if (quota || period) {
      char b[64];
      int n = quota > 0 ? snprintf(b, sizeof b, "%" PRId64, quota) : snprintf(b, sizeof b, "max");
      if (period) snprintf(b + n, sizeof b - n, " %" PRIu64, period);
      if (wr(c, "cpu", "cpu.max", b, W, quota ? "quota" : "period") < 0) return -1;
    }
    if (r_burst == 0 && wr_i64(c, "cpu", "cpu.max.burst", (int64_t)burst, W, "burst") < 0) return -1;
    if (r_idle == 0 && wr_i64(c, "cpu", "cpu.idle", idle, W, "idle") < 0) return -1;
    if (cpus && wr(c, "cpuset", "cpuset.cpus", cpus, W, "cpus") < 0) return -1;
    if (mems && wr(c, "cpuset", "cpuset.mems", mems, W, "mems") < 0) return -1;
    return 0;
  }
  if (shares && need(c, "cpu", "cpu.shares", W, "shares") < 0) return -1;
  if ((quota || period) && need(c, "cpu", "cpu.cfs_quota_us", W, quota ? "quota" : "period") < 0) return -1;
  if (r_burst == 0 && need(c, "cpu", "cpu.cfs_burst_us", W, "burst") < 0) return -1;
  if ((rtrun || rtperiod) && need(c, "cpu", "cpu.rt_runtime_us", W, rtrun ? "realtimeRuntime" : "realtimePeriod") < 0) return -1;
  if (r_idle == 0 && need(c, "cpu", "cpu.idle", W, "idle") < 0) return -1;
  if ((cpus || mems) && need(c, "cpuset", NULL, W, cpus ? "cpus" : "mems") < 0) return -1;
  if (shares && wr_i64(c, "cpu", "cpu.shares", (int64_t)shares, W, "shares") < 0) return -1;
  /* a shorter period can be refused while the old quota exceeds the parent's: then set the quota, then retry */
  bool period_later = false;
  if (period && c->apply) {
    const struct cg_hier *h = hier_of(c->cg, "cpu");
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, period);
    if (write_str(h->path, "cpu.cfs_period_us", b) < 0) {
      if (errno != EINVAL || !quota) return velo_fail(c->e, errno, "config.json: %s.period: cannot write \"%s\" to %s/cpu.cfs_period_us", W, b, h->path);
      period_later = true;
    }
  }
  if (quota && wr_i64(c, "cpu", "cpu.cfs_quota_us", quota, W, "quota") < 0) return -1;
  if (period_later && wr_i64(c, "cpu", "cpu.cfs_period_us", (int64_t)period, W, "period") < 0) return -1;
  if (r_burst == 0 && wr_i64(c, "cpu", "cpu.cfs_burst_us", (int64_t)burst, W, "burst") < 0) return -1;
  if (rtperiod && wr_i64(c, "cpu", "cpu.rt_period_us", (int64_t)rtperiod, W, "realtimePeriod") < 0) return -1;
  if (rtrun && wr_i64(c, "cpu", "cpu.rt_runtime_us", rtrun, W, "realtimeRuntime") < 0) return -1;
  if (r_idle == 0 && wr_i64(c, "cpu", "cpu.idle", idle, W, "idle") < 0) return -1;
  if (cpus && wr(c, "cpuset", "cpuset.cpus", cpus, W, "cpus") < 0) return -1;
  if (mems && wr(c, "cpuset", "cpuset.mems", mems, W, "mems") < 0) return -1;
  return 0;
}

static int res_pids(struct rctx *c, json_object *o) {
  const char *W = RES ".pids";
  static const char *const keys[] = {"limit", NULL};
  int64_t lim = 0;
  if (cfg_only_keys(o, W, keys, c->e) < 0 || cfg_i64(o, "limit", W, &lim, c->e) < 0) return -1;
  if (!lim) return 0; /* 0 = unset (runc); negative = unlimited */
  if (need(c, "pids", "pids.max", W, "limit") < 0) return -1;
  return lim < 0 ? wr(c, "pids", "pids.max", "max", W, "limit") : wr_i64(c, "pids", "pids.max", lim, W, "limit");
}

/* A {major, minor, ...} entry of blockIO: its "M:m" prefix. */
static int dev_prefix(struct rctx *c, json_object *d, const char *where, char *out, size_t outsz) {
  static const char *const keys[] = {"major", "minor", "weight", "leafWeight", "rate", NULL};
  int64_t maj, min;
  if (cfg_only_keys(d, where, keys, c->e) < 0) return -1;
  int a = cfg_i64(d, "major", where, &maj, c->e), b = a < 0 ? -1 : cfg_i64(d, "minor", where, &min, c->e);
  if (a < 0 || b < 0) return -1;
  if (a || b) return cfg_fail(c->e, where, a ? "major" : "minor", "required");
  if (maj < 0 || min < 0 || maj > 0xfff || min > 0xfffff) return cfg_fail(c->e, where, "major", "not a device number");
  snprintf(out, outsz, "%" PRId64 ":%" PRId64, maj, min);
  return 0;
}

static int weight_ok(struct rctx *c, json_object *o, const char *key, const char *where, uint64_t *v) {
  int r = cfg_u64(o, key, where, v, c->e);
  if (r == 0 && *v && (*v < 10 || *v > 1000)) return cfg_fail(c->e, where, key, "expected 10 to 1000 (or 0: unset)");
  return r < 0 ? -1 : 0;
}

static uint64_t io_weight(uint64_t blkio) { return 1 + (blkio - 10) * 9999 / 990; } /* runc: [10,1000] -> [1,10000] */

static int res_blockio(struct rctx *c, json_object *o) {
  const char *W = RES ".blockIO";
  static const char *const keys[] = {"weight", "leafWeight", "weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice", NULL};
  if (cfg_only_keys(o, W, keys, c->e) < 0) return -1;
  uint64_t weight = 0, leaf = 0;
  if (weight_ok(c, o, "weight", W, &weight) < 0 || weight_ok(c, o, "leafWeight", W, &leaf) < 0) return -1;
  const char *ctl = c->cg->v2 ? "io" : "blkio";
  const struct cg_hier *h = hier_of(c->cg, ctl);
  /* v1: BFQ's file when the kernel has it, else CFQ's (gone since 5.0); v2: io.bfq.weight takes blkio's scale */
  const char *wfile = NULL, *wdfile = NULL;
  bool bfq = false;
  if (c->cg->v2) {
    bfq = h && c->apply && file_exists(h->path, "io.bfq.weight");
    wfile = bfq ? "io.bfq.weight" : "io.weight";
    wdfile = wfile;
  } else if (h) {
    bfq = file_exists(h->path, "blkio.bfq.weight") || file_exists(h->mountpoint, "blkio.bfq.io_service_bytes");
    wfile = bfq ? "blkio.bfq.weight" : "blkio.weight";
    wdfile = bfq ? "blkio.bfq.weight_device" : "blkio.weight_device";
  }
  char b[96];
  if (weight) {
    if (need(c, ctl, wfile, W, "weight") < 0) return -1;
    snprintf(b, sizeof b, "%" PRIu64, c->cg->v2 && !bfq ? io_weight(weight) : weight);
    if (wr(c, ctl, wfile, b, W, "weight") < 0) return -1;
  }
  if (leaf) {
    if (c->cg->v2) return cfg_fail(c->e, W, "leafWeight", "not supported on cgroup v2");
    if (need(c, ctl, "blkio.leaf_weight", W, "leafWeight") < 0) return -1;
    snprintf(b, sizeof b, "%" PRIu64, leaf);
    if (wr(c, ctl, "blkio.leaf_weight", b, W, "leafWeight") < 0) return -1;
  }
  json_object *arr;
  int r = cfg_arr(o, "weightDevice", W, &arr, c->e);
  if (r < 0) return -1;
  for (size_t i = 0; r == 0 && i < json_object_array_length(arr); i++) {
    char where[96], dev[32];
    snprintf(where, sizeof where, "%s.weightDevice[%zu]", W, i);
    json_object *d = json_object_array_get_idx(arr, i);
    uint64_t w = 0, lw = 0;
    if (!json_object_is_type(d, json_type_object)) return cfg_fail(c->e, where, NULL, "expected an object");
    if (dev_prefix(c, d, where, dev, sizeof dev) < 0 || weight_ok(c, d, "weight", where, &w) < 0 || weight_ok(c, d, "leafWeight", where, &lw) < 0) return -1;
    if (cfg_get(d, "rate")) return cfg_fail(c->e, where, "rate", "not supported by velo-runtime");
    if (w) {
      if (need(c, ctl, wdfile, where, "weight") < 0) return -1;
      snprintf(b, sizeof b, "%s %" PRIu64, dev, c->cg->v2 && !bfq ? io_weight(w) : w);
      if (wr(c, ctl, wdfile, b, where, "weight") < 0) return -1;
    }
    if (lw) {
      if (c->cg->v2) return cfg_fail(c->e, where, "leafWeight", "not supported on cgroup v2");
      if (need(c, ctl, "blkio.leaf_weight_device", where, "leafWeight") < 0) return -1;
      snprintf(b, sizeof b, "%s %" PRIu64, dev, lw);
      if (wr(c, ctl, "blkio.leaf_weight_device", b, where, "leafWeight") < 0) return -1;
    }
  }
  static const struct { const char *key, *v1, *v2; } th[] = {
      {"throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"},
      {"throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"},
      {"throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"},
      {"throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"},
  };
  for (size_t t = 0; t < sizeof th / sizeof th[0]; t++) {
    if ((r = cfg_arr(o, th[t].key, W, &arr, c->e)) < 0) return -1;
    for (size_t i = 0; r == 0 && i < json_object_array_length(arr); i++) {
      char where[96], dev[32];
      snprintf(where, sizeof where, "%s.%s[%zu]", W, th[t].key, i);
      json_object *d = json_object_array_get_idx(arr, i);
      uint64_t rate;
      if (!json_object_is_type(d, json_type_object)) return cfg_fail(c->e, where, NULL, "expected an object");
      if (dev_prefix(c, d, where, dev, sizeof dev) < 0) return -1;
      if (cfg_get(d, "weight") || cfg_get(d, "leafWeight")) return cfg_fail(c->e, where, cfg_get(d, "weight") ? "weight" : "leafWeight", "not supported by velo-runtime");
      int rr = cfg_u64(d, "rate", where, &rate, c->e);
      if (rr < 0) return -1;
      if (rr) return cfg_fail(c->e, where, "rate", "required");
      if (need(c, ctl, c->cg->v2 ? NULL : th[t].v1, where, "rate") < 0) return -1;
      if (c->cg->v2) {
        /* io.max: 0 means "no limit" in the spec (as v1's 0 removes the rule) */
        if (rate) snprintf(b, sizeof b, "%s %s=%" PRIu64, dev, th[t].v2, rate);
        else snprintf(b, sizeof b, "%s %s=max", dev, th[t].v2);
        if (wr(c, "io", "io.max", b, where, "rate") < 0) return -1;
      } else {
        snprintf(b, sizeof b, "%s %" PRIu64, dev, rate);
        if (wr(c, "blkio", th[t].v1, b, where, "rate") < 0) return -1;
      }
    }
  }
  return 0;
}

static int res_hugetlb(struct rctx *c, json_object *arr) {
  const char *W = RES ".hugepageLimits";
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    char where[64], file[96];
    snprintf(where, sizeof where, "%s[%zu]", W, i);
    json_object *d = json_object_array_get_idx(arr, i);
    static const char *const keys[] = {"pageSize", "limit", NULL};
    const char *ps;
    uint64_t lim;
    if (!json_object_is_type(d, json_type_object)) return cfg_fail(c->e, where, NULL, "expected an object");
    if (cfg_only_keys(d, where, keys, c->e) < 0) return -1;
    int a = cfg_str(d, "pageSize", where, &ps, c->e), b = a < 0 ? -1 : cfg_u64(d, "limit", where, &lim, c->e);
    if (a < 0 || b < 0) return -1;
    if (a || b) return cfg_fail(c->e, where, a ? "pageSize" : "limit", "required");
    size_t dl = strspn(ps, "0123456789");
    if (!dl || dl > 8 || !strchr("KMG", ps[dl]) || !ps[dl] || strcmp(ps + dl + 1, "B")) return cfg_fail(c->e, where, "pageSize", "expected a size such as \"2MB\"");
    snprintf(file, sizeof file, c->cg->v2 ? "hugetlb.%s.max" : "hugetlb.%s.limit_in_bytes", ps);
    if (need(c, "hugetlb", file, where, "pageSize") < 0) return -1;
    if (wr_i64(c, "hugetlb", file, (int64_t)lim, where, "limit") < 0) return -1;
  }
  return 0;
}

static int res_network(struct rctx *c, json_object *o) {
  const char *W = RES ".network";
  static const char *const keys[] = {"classID", "priorities", NULL};
  if (cfg_only_keys(o, W, keys, c->e) < 0) return -1;
  uint64_t classid;
  json_object *prio;
  int r1 = cfg_u64(o, "classID", W, &classid, c->e), r2 = r1 < 0 ? -1 : cfg_arr(o, "priorities", W, &prio, c->e);
  if (r1 < 0 || r2 < 0) return -1;
  if (r1 == 0) {
    if (classid > UINT32_MAX) return cfg_fail(c->e, W, "classID", "expected a 32-bit integer");
    if (c->cg->v2) return cfg_fail(c->e, W, "classID", "net_cls is not available on cgroup v2");
    if (need(c, "net_cls", "net_cls.classid", W, "classID") < 0 || wr_i64(c, "net_cls", "net_cls.classid", (int64_t)classid, W, "classID") < 0) return -1;
  }
  for (size_t i = 0; r2 == 0 && i < json_object_array_length(prio); i++) {
    char where[64], b[128];
    snprintf(where, sizeof where, "%s.priorities[%zu]", W, i);
    json_object *d = json_object_array_get_idx(prio, i);
    static const char *const pk[] = {"name", "priority", NULL};
    const char *name;
    uint64_t p;
    if (!json_object_is_type(d, json_type_object)) return cfg_fail(c->e, where, NULL, "expected an object");
    if (cfg_only_keys(d, where, pk, c->e) < 0) return -1;
    int a = cfg_str(d, "name", where, &name, c->e), bb = a < 0 ? -1 : cfg_u64(d, "priority", where, &p, c->e);
    if (a < 0 || bb < 0) return -1;
    if (a || bb) return cfg_fail(c->e, where, a ? "name" : "priority", "required");
    if (!*name || strlen(name) > 15 || strpbrk(name, " /\n")) return cfg_fail(c->e, where, "name", "not an interface name");
    if (p > UINT32_MAX) return cfg_fail(c->e, where, "priority", "expected a 32-bit integer");
    if (c->cg->v2) return cfg_fail(c->e, W, "priorities", "net_prio is not available on cgroup v2");
    if (need(c, "net_prio", "net_prio.ifpriomap", W, "priorities") < 0) return -1;
    snprintf(b, sizeof b, "%s %" PRIu64, name, p);
    if (wr(c, "net_prio", "net_prio.ifpriomap", b, where, "priority") < 0) return -1;
  }
  return 0;
}

static int res_rdma(struct rctx *c, json_object *o) {
  const char *W = RES ".rdma";
  json_object_object_foreach(o, dev, val) {
    char where[160], b[256];
    snprintf(where, sizeof where, "%s.%s", W, dev);
    static const char *const keys[] = {"hcaHandles", "hcaObjects", NULL};
    uint64_t hh = 0, ho = 0;
    if (!val || !json_object_is_type(val, json_type_object)) return cfg_fail(c->e, W, dev, "expected an object");
    if (cfg_only_keys(val, where, keys, c->e) < 0) return -1;
    int a = cfg_u64(val, "hcaHandles", where, &hh, c->e), bb = a < 0 ? -1 : cfg_u64(val, "hcaObjects", where, &ho, c->e);
    if (a < 0 || bb < 0) return -1;
    if (!*dev || strlen(dev) > 64 || strpbrk(dev, " /\n=")) return cfg_fail(c->e, W, dev, "not an RDMA device name");
    if (hh > INT32_MAX || ho > INT32_MAX) return cfg_fail(c->e, where, hh > INT32_MAX ? "hcaHandles" : "hcaObjects", "out of range");
    if (need(c, "rdma", "rdma.max", W, dev) < 0) return -1;
    if (a && bb) continue;
    int n = snprintf(b, sizeof b, "%s", dev);
    if (!a) n += snprintf(b + n, sizeof b - n, " hca_handle=%" PRIu64, hh);
    if (!bb) snprintf(b + n, sizeof b - n, " hca_object=%" PRIu64, ho);
    if (wr(c, "rdma", "rdma.max", b, where, a ? "hcaObjects" : "hcaHandles") < 0) return -1;
  }
  return 0;
}

static int res_unified(struct rctx *c, json_object *o) {
  const char *W = RES ".unified";
  json_object_object_foreach(o, key, val) {
    if (!c->cg->v2) return cfg_fail(c->e, W, key, "unified (cgroup v2) settings need a cgroup v2 host; this host uses cgroup v1");
    if (!val || !json_object_is_type(val, json_type_string)) return cfg_fail(c->e, W, key, "expected a string");
    const char *dot = strchr(key, '.');
    if (!dot || dot == key || strchr(key, '/') || !strcmp(key, "..")) return cfg_fail(c->e, W, key, "not a cgroup v2 file name");
    /* cgroup.* files are the runtime's own business (procs, subtree_control, freeze, kill, ...) */
    if (!strncmp(key, "cgroup.", 7)) return cfg_fail(c->e, W, key, "cgroup core files cannot be set");
    char ctl[64];
    snprintf(ctl, sizeof ctl, "%.*s", (int)(dot - key), key);
    if (need(c, ctl, NULL, W, key) < 0) return -1;
    if (wr(c, ctl, key, json_object_get_string(val), W, key) < 0) return -1;
  }
  return 0;
}

/* ---- devices */

#define ACC_M BPF_DEVCG_ACC_MKNOD
#define ACC_R BPF_DEVCG_ACC_READ
#define ACC_W BPF_DEVCG_ACC_WRITE
#define ACC_ALL (ACC_M | ACC_R | ACC_W)

struct devrule {
  bool allow;
  char type;      /* 'a', 'c', 'b' */
  int64_t major;  /* -1: any */
  int64_t minor;
  unsigned access;
};

/* What runc appends to every container's device rules, so a `runc spec` config (deny all) still has its
 * default devices (/dev/null, zero, full, random, urandom, tty, ptmx, pts, tun) and can mknod. */
static const struct devrule default_allow[] = {
    {true, 'c', -1, -1, ACC_M}, {true, 'b', -1, -1, ACC_M}, {true, 'c', 1, 3, ACC_ALL},   {true, 'c', 1, 8, ACC_ALL},
    {true, 'c', 1, 7, ACC_ALL}, {true, 'c', 5, 0, ACC_ALL}, {true, 'c', 1, 5, ACC_ALL},   {true, 'c', 1, 9, ACC_ALL},
    {true, 'c', 136, -1, ACC_ALL}, {true, 'c', 5, 2, ACC_ALL}, {true, 'c', 10, 200, ACC_ALL},
};

static int parse_devices(struct rctx *c, json_object *arr, struct devrule **out, size_t *n) {
  const char *W = RES ".devices";
  size_t len = json_object_array_length(arr), nd = sizeof default_allow / sizeof default_allow[0];
  struct devrule *r = calloc(len + nd, sizeof *r);
  if (!r) return VELO_FAIL_ERRNO(c->e, "out of memory");
  for (size_t i = 0; i < len; i++) {
    char where[64];
    snprintf(where, sizeof where, "%s[%zu]", W, i);
    json_object *d = json_object_array_get_idx(arr, i);
    static const char *const keys[] = {"allow", "type", "major", "minor", "access", NULL};
    const char *type = "a", *access = "rwm";
    int ra;
    if (!d || !json_object_is_type(d, json_type_object)) return free(r), cfg_fail(c->e, where, NULL, "expected an object");
    r[i].major = r[i].minor = -1;
    if (cfg_only_keys(d, where, keys, c->e) < 0 || (ra = cfg_bool(d, "allow", where, &r[i].allow, c->e)) < 0 || cfg_str(d, "type", where, &type, c->e) < 0 ||
        check_int_range(c, d, "major", where, -1, 0xfff, &r[i].major) < 0 || check_int_range(c, d, "minor", where, -1, 0xfffff, &r[i].minor) < 0 ||
        cfg_str(d, "access", where, &access, c->e) < 0)
      return free(r), -1;
    if (ra) return free(r), cfg_fail(c->e, where, "allow", "required");
    if (strlen(type) != 1 || !strchr("acb", type[0])) return free(r), cfg_fail(c->e, where, "type", "expected \"a\", \"c\" or \"b\"");
    r[i].type = type[0];
    if (!*access) access = "rwm";
    for (const char *p = access; *p; p++) {
      unsigned bit = *p == 'r' ? ACC_R : *p == 'w' ? ACC_W : *p == 'm' ? ACC_M : 0;
      if (!bit) return free(r), cfg_fail(c->e, where, "access", "expected a combination of r, w and m");
      r[i].access |= bit;
    }
  }
  memcpy(r + len, default_allow, sizeof default_allow);
  *out = r;
  *n = len + nd;
  return 0;
}

static bool full_wildcard(const struct devrule *r) { return r->type == 'a' && r->major < 0 && r->minor < 0 && r->access == ACC_ALL; }

static void v1_rule(const struct devrule *r, char type, char *out, size_t outsz) {
  char maj[24] = "*", min[24] = "*", acc[4];
  int n = 0;
  if (r->major >= 0) snprintf(maj, sizeof maj, "%" PRId64, r->major);
  if (r->minor >= 0) snprintf(min, sizeof min, "%" PRId64, r->minor);
  if (r->access & ACC_R) acc[n++] = 'r';
  if (r->access & ACC_W) acc[n++] = 'w';
  if (r->access & ACC_M) acc[n++] = 'm';
  acc[n] = 0;
  snprintf(out, outsz, "%c %s:%s %s", type, maj, min, acc);
}

/* v1: the rules written in order to devices.allow / devices.deny, which is the semantics the spec borrows.
 * The kernel takes "a" as the whole wildcard (whatever follows), so a narrower "a" rule becomes a "c" and a
 * "b" rule. */
static int devices_v1(struct rctx *c, const struct devrule *r, size_t n) {
  const char *W = RES ".devices";
  const struct cg_hier *h = hier_of(c->cg, "devices");
  if (!h) return cfg_fail(c->e, W, NULL, "the cgroup v1 devices controller is not mounted on this host");
  if (!c->apply) return 0;
  for (size_t i = 0; i < n; i++) {
    const char *file = r[i].allow ? "devices.allow" : "devices.deny";
    char b[80];
    const char *types = full_wildcard(&r[i]) ? "a" : r[i].type == 'a' ? "cb" : (char[]){r[i].type, 0};
    for (const char *t = types; *t; t++) {
      if (*t == 'a') snprintf(b, sizeof b, "a");
      else v1_rule(&r[i], *t, b, sizeof b);
      if (write_str(h->path, file, b) < 0) {
        if (i >= n - sizeof default_allow / sizeof default_allow[0])
          return velo_fail(c->e, errno, "cgroup: cannot allow the default device \"%s\" in %s/%s", b, h->path, file);
        return velo_fail(c->e, errno, "config.json: %s[%zu]: cannot write \"%s\" to %s/%s", W, i, b, h->path, file);
      }
    }
  }
  return 0;
}

/* v2: a BPF_PROG_TYPE_CGROUP_DEVICE program. Rules fold like v1's writes: the last full wildcard sets the
 * default and clears what came before; after it, the last matching rule wins (so the program tests them from
 * the end). */
#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

static int bpf_sys(int cmd, union bpf_attr *a) { return (int)syscall(SYS_bpf, cmd, a, sizeof *a); }

static int devices_v2_prog(const struct devrule *r, size_t n, struct bpf_insn **out, size_t *len) {
  size_t start = 0;
  bool deflt = true; /* a fresh cgroup allows every device */
  for (size_t i = 0; i < n; i++)
    if (full_wildcard(&r[i])) start = i + 1, deflt = r[i].allow;
  struct bpf_insn *p = calloc(8 + (n - start) * 8 + 2, sizeof *p);
  if (!p) return -1;
  size_t k = 0;
  p[k++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 2, 1, 0, 0);  /* r2 = ctx->access_type */
  p[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 2, 0, 0); /* r3 = type */
  p[k++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, 3, 0, 0, 0xffff);
  p[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 4, 2, 0, 0); /* r4 = access */
  p[k++] = INSN(BPF_ALU64 | BPF_RSH | BPF_K, 4, 0, 0, 16);
  p[k++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 5, 1, 4, 0);  /* r5 = major */
  p[k++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 6, 1, 8, 0);  /* r6 = minor */
  for (size_t j = n; j-- > start;) {
    size_t jumps[4], nj = 0;
    if (r[j].type != 'a') jumps[nj++] = k, p[k++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 3, 0, 0, r[j].type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK);
    if (r[j].access != ACC_ALL) { /* the request must be within the rule's access */
      p[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 7, 4, 0, 0);
      p[k++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, 7, 0, 0, (int32_t)(~r[j].access & ACC_ALL));
      jumps[nj++] = k, p[k++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 7, 0, 0, 0);
    }
    if (r[j].major >= 0) jumps[nj++] = k, p[k++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 5, 0, 0, (int32_t)r[j].major);
    if (r[j].minor >= 0) jumps[nj++] = k, p[k++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 6, 0, 0, (int32_t)r[j].minor);
    p[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, r[j].allow ? 1 : 0);
    p[k++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    for (size_t m = 0; m < nj; m++) p[jumps[m]].off = (int16_t)(k - jumps[m] - 1);
  }
  p[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, deflt ? 1 : 0);
  p[k++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  *out = p;
  *len = k;
  return 0;
}

static int devices_v2(struct rctx *c, const struct devrule *r, size_t n) {
  const char *W = RES ".devices";
  if (!c->apply) return 0;
  cleanup_free struct bpf_insn *prog = NULL;
  size_t len;
  if (devices_v2_prog(r, n, &prog, &len) < 0) return VELO_FAIL_ERRNO(c->e, "out of memory");
  static char log[16384];
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  a.insns = (uintptr_t)prog;
  a.insn_cnt = (uint32_t)len;
  a.license = (uintptr_t) "Apache";
  a.log_buf = (uintptr_t)log;
  a.log_size = sizeof log;
  a.log_level = 1;
  log[0] = 0;
  cleanup_fd int pfd = bpf_sys(BPF_PROG_LOAD, &a);
  if (pfd < 0) return velo_fail(c->e, errno, "%s: cannot load the device filter (BPF_PROG_TYPE_CGROUP_DEVICE)%s%.200s", W, log[0] ? ": " : "", log);
  const struct cg_hier *h = &c->cg->h[0];
  cleanup_fd int dfd = open(h->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return VELO_FAIL_ERRNO(c->e, "open %s", h->path);
  /* the programs attached before (an update replaces them): attach the new one first, so there is no moment
   * without a filter, then detach the old ones */
  uint32_t ids[64], nids = 64;
  memset(&a, 0, sizeof a);
  a.query.target_fd = (uint32_t)dfd;
  a.query.attach_type = BPF_CGROUP_DEVICE;
  a.query.prog_ids = (uintptr_t)ids;
  a.query.prog_cnt = nids;
  if (bpf_sys(BPF_PROG_QUERY, &a) < 0) return VELO_FAIL_ERRNO(c->e, "cgroup: query the device filters of %s", h->path);
  nids = a.query.prog_cnt;
  memset(&a, 0, sizeof a);
  a.target_fd = (uint32_t)dfd;
  a.attach_bpf_fd = (uint32_t)pfd;
  a.attach_type = BPF_CGROUP_DEVICE;
  a.attach_flags = BPF_F_ALLOW_MULTI;
  if (bpf_sys(BPF_PROG_ATTACH, &a) < 0) return VELO_FAIL_ERRNO(c->e, "cgroup: attach the device filter to %s", h->path);
  for (uint32_t i = 0; i < nids && i < 64; i++) {
    memset(&a, 0, sizeof a);
    a.prog_id = ids[i];
    cleanup_fd int old = bpf_sys(BPF_PROG_GET_FD_BY_ID, &a);
    if (old < 0) continue; /* already gone */
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)dfd;
    a.attach_bpf_fd = (uint32_t)old;
    a.attach_type = BPF_CGROUP_DEVICE;
    if (bpf_sys(BPF_PROG_DETACH, &a) < 0 && errno != ENOENT) return VELO_FAIL_ERRNO(c->e, "cgroup: detach an old device filter from %s", h->path);
  }
  return 0;
}

static int res_devices(struct rctx *c, json_object *arr) {
  cleanup_free struct devrule *r = NULL;
  size_t n = 0;
  if (parse_devices(c, arr, &r, &n) < 0) return -1;
  return c->cg->v2 ? devices_v2(c, r, n) : devices_v1(c, r, n);
}

static int resources(struct rctx *c, json_object *res) {
  static const char *const keys[] = {"devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified", NULL};
  if (cfg_only_keys(res, RES, keys, c->e) < 0) return -1;
  if (c->cg->v2) {
    cleanup_free char *ctl = read_str(c->cg->h[0].mountpoint, "cgroup.controllers");
    snprintf(c->v2ctl, sizeof c->v2ctl, "%s", ctl ? ctl : "");
  }
  json_object *o;
  int r;
  /* devices first, as runc: the filter is in place before anything else can run in the cgroup. Absent: a
   * fresh cgroup allows every device, so there is nothing to write. */
  /* Not root: the device rules are not applied (a v2 device program needs CAP_BPF in the host's user namespace,
   * a v1 devices cgroup a write only root may do): such a container is in a user namespace, where device nodes
   * cannot be made, and its /dev holds binds of the host's harmless ones only. Validated all the same. */
  if ((r = cfg_arr(res, "devices", RES, &o, c->e)) < 0) return -1;
  if (r == 0 && rt_rootless()) {
    cleanup_free struct devrule *dr = NULL;
    size_t dn = 0;
    if (parse_devices(c, o, &dr, &dn) < 0) return -1;
  } else if (r == 0 && res_devices(c, o) < 0) {
    return -1;
  }
  if ((r = cfg_obj(res, "memory", RES, &o, c->e)) < 0 || (r == 0 && res_memory(c, o) < 0)) return -1;
  if ((r = cfg_obj(res, "cpu", RES, &o, c->e)) < 0 || (r == 0 && res_cpu(c, o) < 0)) return -1;
  if ((r = cfg_obj(res, "pids", RES, &o, c->e)) < 0 || (r == 0 && res_pids(c, o) < 0)) return -1;
  if ((r = cfg_obj(res, "blockIO", RES, &o, c->e)) < 0 || (r == 0 && res_blockio(c, o) < 0)) return -1;
  if ((r = cfg_arr(res, "hugepageLimits", RES, &o, c->e)) < 0 || (r == 0 && res_hugetlb(c, o) < 0)) return -1;
  if ((r = cfg_obj(res, "network", RES, &o, c->e)) < 0 || (r == 0 && res_network(c, o) < 0)) return -1;
  if ((r = cfg_obj(res, "rdma", RES, &o, c->e)) < 0 || (r == 0 && res_rdma(c, o) < 0)) return -1;
  if ((r = cfg_obj(res, "unified", RES, &o, c->e)) < 0 || (r == 0 && res_unified(c, o) < 0)) return -1;
  return 0;
}

/* ---- plan */

int oci_cgroup_plan(json_object *linux_, const char *id, bool systemd, struct oci_cgroup *cg, struct velo_err *e) {
  memset(cg, 0, sizeof *cg);
  if (systemd) return velo_fail(e, 0, "velo-runtime: --systemd-cgroup is not supported (no systemd cgroup manager); use the cgroupfs driver");
  const char *path = NULL;
  json_object *res = NULL;
  if (cfg_str(linux_, "cgroupsPath", "linux", &path, e) < 0 || cfg_obj(linux_, "resources", "linux", &res, e) < 0) return -1;
  char clean[4096], def[512];
  if (!path || !*path) {
    snprintf(def, sizeof def, "/velo-runtime/%s", id);
    path = def;
  }
  int cr = clean_path(path, clean, sizeof clean);
  if (cr == -1) return cfg_fail(e, "linux", "cgroupsPath", "must not contain \"..\"");
  if (cr < 0) return cfg_fail(e, "linux", "cgroupsPath", "too long");
  if (!strcmp(clean, "/")) return cfg_fail(e, "linux", "cgroupsPath", "must name a cgroup below the root");
  bool relative = path[0] != '/';
  /* "a:b:c" is the systemd driver's slice:prefix:name form; taken as a path it would make a strange dir */
  if (strchr(path, ':')) return cfg_fail(e, "linux", "cgroupsPath", "\"%s\" is a systemd-style path (slice:prefix:name); velo-runtime has only the cgroupfs driver", path);

  const char *root = cg_root();
  struct statfs sfs;
  if (statfs(root, &sfs) < 0) return VELO_FAIL_ERRNO(e, "cgroup: statfs %s", root);
  struct mnt *m = NULL;
  size_t nm = 0;
  if (list_mounts(root, &m, &nm, e) < 0) return -1;
  int rc = 0;
  cg->v2 = sfs.f_type == CGROUP2_SUPER_MAGIC;
  for (size_t i = 0; i < nm && rc == 0; i++) {
    bool at_root = !strcmp(m[i].mountpoint, root);
    if (cg->v2 != at_root) continue; /* v2: only the root mount; v1: only the mounts below it */
    if (cg->v2 && strcmp(m[i].fstype, "cgroup2")) continue;
    const char *ctl = !strcmp(m[i].fstype, "cgroup2") ? "" : m[i].controllers;
    if (!strcmp(m[i].fstype, "cgroup") && !*ctl) continue;
    char rel[8192];
    if (relative) {
      char own[4096];
      if (own_cgroup(ctl, own, sizeof own, e) < 0) {
        rc = -1;
        break;
      }
      /* /proc/self/cgroup and the mount's root are both seen from our cgroup namespace */
      size_t rl = strlen(m[i].root);
      const char *below = own;
      if (strcmp(m[i].root, "/")) {
        if (strncmp(own, m[i].root, rl) || (own[rl] && own[rl] != '/')) {
          rc = velo_fail(e, 0, "cgroup: own cgroup %s is outside the mount %s", own, m[i].mountpoint);
          break;
        }
        below = own + rl;
      }
      char base[4096];
      snprintf(base, sizeof base, "%s", *below ? below : "/");
      if (cg->v2) { /* the parent: our own cgroup has processes, so it cannot delegate controllers */
        char *sl = strrchr(base, '/');
        if (sl == base) base[1] = 0;
        else if (sl) *sl = 0;
      }
      snprintf(rel, sizeof rel, "%s%s", strcmp(base, "/") ? base : "", clean);
    } else
      snprintf(rel, sizeof rel, "%s", clean);
    rc = add_hier(cg, ctl, m[i].mountpoint, rel, e);
  }
  free(m);
  if (rc == 0 && !cg->n)
    rc = velo_fail(e, 0, "cgroup: no cgroup hierarchy is mounted at %s%s", root, cg->v2 ? "" : "/<controller> (set VELO_CGROUP_ROOT to where they are)");
  /* a path that names a control file of its parent (".../tasks") or anything else that is not a cgroup */
  for (size_t i = 0; rc == 0 && i < cg->n; i++) {
    struct stat st;
    if (lstat(cg->h[i].path, &st) == 0 && !S_ISDIR(st.st_mode))
      rc = cfg_fail(e, "linux", "cgroupsPath", "%s exists and is not a cgroup directory", cg->h[i].path);
  }
  if (rc == 0) {
    struct rctx c = {.cg = cg, .e = e};
    rc = resources(&c, res);
  }
  if (rc < 0) oci_cgroup_free(cg);
  return rc;
}

/* ---- create */

/* mkdir -p of h->path; records in *made the first dir it made (to undo), NULL when all existed. v1 cpuset:
 * a new cpuset cgroup starts with no CPUs and no memory nodes, and nothing can join it, so every new level
 * copies its parent's. v2: every level above the container enables the parent's controllers for its children. */
static int make_dirs(const struct oci_cgroup *cg, const struct cg_hier *h, char **made, struct velo_err *e) {
  *made = NULL;
  size_t ml = strlen(h->mountpoint);
  char *p = strdup(h->path);
  if (!p) return VELO_FAIL_ERRNO(e, "out of memory");
  bool cpuset = !cg->v2 && word_in(h->controllers, "cpuset", ",");
  bool balanced = false; /* v1 cpuset: some level above the one being made has cpuset.sched_load_balance on */
  for (char *s = p + ml; s && *s;) {
    char *next = strchr(s + 1, '/');
    if (next) *next = 0;
    char *parent = strdup(p);
    if (parent) {
      char *sl = strrchr(parent, '/');
      if (sl && sl > parent) *sl = 0;
    }
    if (cg->v2 && parent) {
      cleanup_free char *avail = read_str(parent, "cgroup.controllers");
      cleanup_free char *on = read_str(parent, "cgroup.subtree_control");
      for (char *sv = NULL, *t = avail ? strtok_r(avail, " ", &sv) : NULL; t; t = strtok_r(NULL, " ", &sv)) {
        if (on && word_in(on, t, " ")) continue;
        char b[80];
        snprintf(b, sizeof b, "+%s", t);
        /* one at a time, errors ignored: a controller that cannot be delegated here (a parent with processes,
         * a threaded subtree) shows later as a missing file, named by the field that needs it */
        (void)write_str(parent, "cgroup.subtree_control", b);
      }
    }
    if (cpuset && parent && !balanced) {
      cleanup_free char *flag = read_str(parent, "cpuset.sched_load_balance");
      balanced = flag && !strcmp(flag, "1");
    }
    if (mkdir(p, 0755) == 0) {
      if (!*made) *made = strdup(p);
      if (cpuset && parent) {
        /* With an ancestor balancing load, its sched domain spans this cpuset's CPUs and the kernel never reads
         * this flag (generate_sched_domains skips the subtree of a balancing cpuset); left on, as it starts,
         * every write of cpuset.cpus and the rmdir rebuild the host's sched domains, which walks every cpuset
         * on the host: a cost per container that grows with the number of containers (docs/operations.md).
         * Written while the dir has no CPUs, so this write rebuilds nothing either. Only the container's own
         * dir: a parent made here keeps the kernel's default, so a host that later turns balancing off above it
         * still balances the containers below. Errors ignored: the flag only saves work. */
        if (balanced && !next) (void)write_str(p, "cpuset.sched_load_balance", "0");
        for (const char *f = "cpuset.cpus"; f; f = strcmp(f, "cpuset.cpus") ? NULL : "cpuset.mems") {
          cleanup_free char *mine = read_str(p, f);
          if (mine && *mine) continue;
          cleanup_free char *theirs = read_str(parent, f);
          if (!theirs || write_str(p, f, theirs) < 0) {
            int err = errno;
            free(parent);
            free(p);
            return velo_fail(e, err, "cgroup: copy %s from the parent into %s", f, h->path);
          }
        }
      }
    } else if (errno != EEXIST) {
      int err = errno;
      char what[4200];
      snprintf(what, sizeof what, "%s", p);
      free(parent);
      free(p);
      return velo_fail(e, err, "cgroup: mkdir %s", what);
    }
    free(parent);
    if (next) *next = '/';
    s = next;
  }
  free(p);
  return 0;
}

/* rmdir path and every cgroup below it, deepest first. */
static int rmdir_cgroup_tree(const char *path) {
  DIR *d = opendir(path);
  if (!d) return errno == ENOENT ? 0 : -1;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d))) {
    if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char *sub;
    if (asprintf(&sub, "%s/%s", path, de->d_name) < 0) continue;
    if (rmdir_cgroup_tree(sub) < 0) rc = -1;
    free(sub);
  }
  closedir(d);
  if (rmdir(path) < 0 && errno != ENOENT) rc = -1;
  return rc;
}

/* linux.resources asks for something beyond device rules (which a rootless container does without, above) */
static const char *resource_beyond_devices(json_object *res) {
  if (!res) return NULL;
  json_object_object_foreach(res, key, val) {
    if (strcmp(key, "devices") && val && !json_object_is_type(val, json_type_null)) return key;
  }
  return NULL;
}

int oci_cgroup_create(struct oci_cgroup *cg, json_object *linux_, struct velo_err *e) {
  char **made = calloc(cg->n ? cg->n : 1, sizeof *made);
  if (!made) return VELO_FAIL_ERRNO(e, "out of memory");
  int rc = 0;
  for (size_t i = 0; i < cg->n && rc == 0; i++) rc = make_dirs(cg, &cg->h[i], &made[i], e);
  if (rc < 0 && rt_rootless() && (e->errnum == EACCES || e->errnum == EPERM || e->errnum == EROFS)) {
    /* Not root and no cgroup of ours to make here (cgroup v1, or v2 not delegated to this user): as runc, the
     * container goes without one when it asks for no limit; a limit it asks for is an error that names it. */
    json_object *res = NULL;
    const char *need = cfg_obj(linux_, "resources", "linux", &res, e) < 0 ? NULL : resource_beyond_devices(res);
    if (need) {
      char was[sizeof e->msg];
      snprintf(was, sizeof was, "%s", e->msg);
      int en = e->errnum;
      rc = velo_fail(e, 0, "cannot apply linux.resources.%s as uid %u: no cgroup is delegated to this user here (%s)", need, (unsigned)geteuid(), was);
      e->errnum = en;
    } else {
      for (size_t i = 0; i < cg->n; i++) {
        if (made[i]) rmdir_cgroup_tree(made[i]);
        free(made[i]);
      }
      free(made);
      oci_cgroup_free(cg);
      memset(e, 0, sizeof *e);
      return 0;
    }
  }
  if (rc == 0) {
    json_object *res = NULL;
    if (cfg_obj(linux_, "resources", "linux", &res, e) < 0) rc = -1;
    struct rctx c = {.cg = cg, .apply = true, .e = e};
    if (rc == 0) rc = resources(&c, res);
  }
  for (size_t i = 0; i < cg->n; i++) {
    /* undo: only what this call made (an existing cgroup that was reused is left as it was) */
    if (rc < 0 && made[i]) rmdir_cgroup_tree(made[i]);
    free(made[i]);
  }
  free(made);
  return rc;
}

/* ---- join */

int oci_cgroup_join(const struct oci_cgroup *cg, pid_t pid, int which, struct velo_err *e) {
  char b[32];
  snprintf(b, sizeof b, "%d", (int)pid);
  for (size_t i = 0; i < cg->n; i++) {
    const struct cg_hier *h = &cg->h[i];
    if (!(which & (*h->controllers ? CG_V1 : CG_V2))) continue;
    /* v1, the caller itself: through `tasks`, which moves only the calling thread and so skips the global
     * cgroup_threadgroup_rwsem (and its RCU grace period, 10-20 ms) that a cgroup.procs write takes. The caller
     * must be single-threaded (as the runtime is when it joins: before clone, or right after fork), so moving
     * the thread moves the process. Another pid goes through cgroup.procs, which moves its whole thread group. */
    bool tasks = !cg->v2 && *h->controllers && pid == 0;
    if (tasks && write_str(h->path, "tasks", "0") == 0) continue;
    if (write_str(h->path, "cgroup.procs", b) < 0) return VELO_FAIL_ERRNO(e, "cgroup: move %s into %s", pid ? b : "self", h->path);
  }
  return 0;
}

pid_t oci_cgroup_clone(const struct oci_cgroup *cg, unsigned long flags, bool *born) {
  *born = false;
  const char *v2 = NULL;
  for (size_t i = 0; cg && i < cg->n; i++)
    if (!*cg->h[i].controllers) v2 = cg->h[i].path;
  int fd = v2 ? open(v2, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
  if (fd >= 0) {
    struct clone_args ca = {.flags = (uint64_t)flags | CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)fd};
    pid_t p = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
    if (p >= 0) {
      close(fd);
      *born = true;
      return p;
    }
    close(fd);
    /* not this kernel's (ENOSYS, E2BIG), a filter's (Docker's default seccomp profile answers ENOSYS), or refused for
     * the cgroup (EACCES, EBUSY): a plain clone, then a move whose error, if it fails too, names the cgroup. An error
     * that is the namespaces' comes back from the clone as well. */
  }
  return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* ---- pids */

static int collect(const char *dir, pid_t **pids, size_t *n, size_t *cap) {
  FILE *f;
  char p[4352];
  snprintf(p, sizeof p, "%s/cgroup.procs", dir);
  if (!(f = fopen(p, "re"))) return errno == ENOENT ? 0 : -1;
  long v;
  while (fscanf(f, "%ld", &v) == 1) {
    if (*n == *cap) {
      *cap = *cap ? *cap * 2 : 64;
      pid_t *np = realloc(*pids, *cap * sizeof *np);
      if (!np) return fclose(f), -1;
      *pids = np;
    }
    (*pids)[(*n)++] = (pid_t)v;
  }
  fclose(f);
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : -1;
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    rc = collect(p, pids, n, cap);
  }
  closedir(d);
  return rc;
}

static int cmp_pid(const void *a, const void *b) { return (*(const pid_t *)a > *(const pid_t *)b) - (*(const pid_t *)a < *(const pid_t *)b); }

int oci_cgroup_pids(const struct oci_cgroup *cg, pid_t **pids, size_t *n, struct velo_err *e) {
  *pids = NULL;
  *n = 0;
  size_t cap = 0;
  const struct cg_hier *h = main_hier(cg);
  if (!h) return velo_fail(e, 0, "cgroup: no hierarchy");
  if (collect(h->path, pids, n, &cap) < 0) {
    int err = errno;
    free(*pids);
    *pids = NULL;
    *n = 0;
    return velo_fail(e, err, "cgroup: read the processes of %s", h->path);
  }
  qsort(*pids, *n, sizeof **pids, cmp_pid);
  size_t o = 0; /* a process that moved between child cgroups while we read may show twice */
  for (size_t i = 0; i < *n; i++)
    if (!o || (*pids)[o - 1] != (*pids)[i]) (*pids)[o++] = (*pids)[i];
  *n = o;
  return 0;
}

/* ---- freeze */

static bool v2_frozen_event(const char *dir) {
  cleanup_free char *ev = read_str(dir, "cgroup.events");
  if (!ev) return false;
  const char *f = strstr(ev, "frozen ");
  return f && (f == ev || f[-1] == '\n') && f[7] == '1';
}

int oci_cgroup_freeze(const struct oci_cgroup *cg, bool frozen, struct velo_err *e) {
  const struct cg_hier *h = cg->v2 ? (cg->n ? &cg->h[0] : NULL) : hier_of(cg, "freezer");
  if (!h) return velo_fail(e, 0, "cgroup: the freezer controller is not mounted: cannot %s", frozen ? "pause" : "resume");
  if (cg->v2) {
    if (write_str(h->path, "cgroup.freeze", frozen ? "1" : "0") < 0) return VELO_FAIL_ERRNO(e, "cgroup: write %s/cgroup.freeze", h->path);
    if (!frozen) return 0;
    for (long long end = now_ms() + 5000; now_ms() < end; sleep_ms(2))
      if (v2_frozen_event(h->path)) return 0;
    (void)write_str(h->path, "cgroup.freeze", "0");
    return velo_fail(e, ETIMEDOUT, "cgroup: %s did not freeze", h->path);
  }
  const char *want = frozen ? "FROZEN" : "THAWED";
  /* FREEZING means a task is still on its way (in an uninterruptible sleep, say): write again until it settles */
  for (long long end = now_ms() + 5000;;) {
    if (write_str(h->path, "freezer.state", want) < 0) return VELO_FAIL_ERRNO(e, "cgroup: write %s to %s/freezer.state", want, h->path);
    cleanup_free char *st = read_str(h->path, "freezer.state");
    if (!st) return VELO_FAIL_ERRNO(e, "cgroup: read %s/freezer.state", h->path);
    if (!strcmp(st, want)) return 0;
    if (now_ms() > end) break;
    sleep_ms(2);
  }
  if (frozen) (void)write_str(h->path, "freezer.state", "THAWED");
  return velo_fail(e, ETIMEDOUT, "cgroup: %s did not reach %s", h->path, want);
}

bool oci_cgroup_frozen(const struct oci_cgroup *cg) {
  if (cg->v2) {
    if (!cg->n) return false;
    cleanup_free char *f = read_str(cg->h[0].path, "cgroup.freeze");
    return f && !strcmp(f, "1");
  }
  const struct cg_hier *h = hier_of(cg, "freezer");
  if (!h) return false;
  cleanup_free char *st = read_str(h->path, "freezer.state");
  return st && strcmp(st, "THAWED") != 0; /* FREEZING counts: the container is not running freely */
}

/* ---- kill */

int oci_cgroup_kill_all(const struct oci_cgroup *cg, int sig, int timeout_ms, struct velo_err *e) {
  const struct cg_hier *h = main_hier(cg);
  if (!h) return velo_fail(e, 0, "cgroup: no hierarchy");
  long long end = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  bool thawed = false;
  useconds_t wait_us = 100;
  for (;;) {
    pid_t *pids;
    size_t n;
    if (oci_cgroup_pids(cg, &pids, &n, e) < 0) {
      if (errno == ENOENT) return 0; /* the cgroup is gone, and so is everything in it */
      return -1;
    }
    if (n == 0) {
      free(pids);
      return 0;
    }
    /* v2 SIGKILL: cgroup.kill kills the whole subtree at once, even processes forking as we go */
    bool done = false;
    if (sig == SIGKILL && cg->v2 && write_str(h->path, "cgroup.kill", "1") == 0) done = true;
    for (size_t i = 0; !done && i < n; i++)
      if (kill(pids[i], sig) < 0 && errno != ESRCH) {
        int err = errno;
        free(pids);
        return velo_fail(e, err, "cgroup: kill(%d, %d)", (int)pids[i], sig);
      }
    free(pids);
    /* a frozen v1 task does not act on SIGKILL until thawed */
    if (sig == SIGKILL && !cg->v2 && !thawed && oci_cgroup_frozen(cg)) {
      if (oci_cgroup_freeze(cg, false, e) < 0) return -1;
      thawed = true;
    }
    if (sig != SIGKILL) return 0;
    if (now_ms() >= end) return velo_fail(e, ETIMEDOUT, "cgroup: processes are left in %s after SIGKILL", h->path);
    /* exits take well under a millisecond each: look again soon, then back off */
    usleep(wait_us);
    if (wait_us < 5000) wait_us *= 2;
  }
}

/* ---- destroy */

int oci_cgroup_destroy(const struct oci_cgroup *cg, struct velo_err *e) {
  int rc = 0;
  for (size_t i = 0; i < cg->n; i++) {
    const char *p = cg->h[i].path;
    /* EBUSY while the last tasks finish exiting (a zombie still counts until reaped): retry for about 1 s */
    useconds_t wait_us = 100;
    for (long long end = now_ms() + 1000;;) {
      if (rmdir_cgroup_tree(p) == 0) break;
      if (errno != EBUSY || now_ms() > end) {
        rc = VELO_FAIL_ERRNO(e, "cgroup: remove %s", p);
        break;
      }
      usleep(wait_us);
      if (wait_us < 5000) wait_us *= 2;
    }
  }
  return rc;
}

/* ---- update */

int oci_cgroup_update(const struct oci_cgroup *cg, json_object *resources_, struct velo_err *e) {
  if (resources_ && !json_object_is_type(resources_, json_type_object)) return cfg_fail(e, RES, NULL, "expected an object");
  struct rctx c = {.cg = cg, .update = true, .e = e};
  if (resources(&c, resources_) < 0) return -1;
  c.apply = true;
  return resources(&c, resources_);
}

/* ---- state file */

json_object *oci_cgroup_to_json(const struct oci_cgroup *cg) {
  json_object *j = json_object_new_object(), *arr = json_object_new_array();
  json_object_object_add(j, "v2", json_object_new_boolean(cg->v2));
  for (size_t i = 0; i < cg->n; i++) {
    json_object *h = json_object_new_object();
    json_object_object_add(h, "controllers", json_object_new_string(cg->h[i].controllers));
    json_object_object_add(h, "mountpoint", json_object_new_string(cg->h[i].mountpoint));
    json_object_object_add(h, "path", json_object_new_string(cg->h[i].path));
    json_object_object_add(h, "rel", json_object_new_string(cg->h[i].rel));
    json_object_array_add(arr, h);
  }
  json_object_object_add(j, "hier", arr);
  return j;
}

int oci_cgroup_from_json(json_object *j, struct oci_cgroup *cg, struct velo_err *e) {
  memset(cg, 0, sizeof *cg);
  json_object *v2, *arr;
  if (!j || !json_object_object_get_ex(j, "v2", &v2) || !json_object_is_type(v2, json_type_boolean) || !json_object_object_get_ex(j, "hier", &arr) ||
      !json_object_is_type(arr, json_type_array))
    return velo_fail(e, 0, "state: cgroup: expected {\"v2\": bool, \"hier\": [...]}");
  cg->v2 = json_object_get_boolean(v2);
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    json_object *h = json_object_array_get_idx(arr, i), *f[4];
    static const char *const names[] = {"controllers", "mountpoint", "path", "rel"};
    for (int k = 0; k < 4; k++)
      if (!h || !json_object_object_get_ex(h, names[k], &f[k]) || !json_object_is_type(f[k], json_type_string)) {
        oci_cgroup_free(cg);
        return velo_fail(e, 0, "state: cgroup: hier[%zu].%s: expected a string", i, names[k]);
      }
    if (add_hier(cg, json_object_get_string(f[0]), json_object_get_string(f[1]), json_object_get_string(f[3]), e) < 0) {
      oci_cgroup_free(cg);
      return -1;
    }
    /* keep the stored path as written (it is what create made) */
    free(cg->h[cg->n - 1].path);
    if (!(cg->h[cg->n - 1].path = strdup(json_object_get_string(f[2])))) {
      oci_cgroup_free(cg);
      return VELO_FAIL_ERRNO(e, "out of memory");
    }
  }
  return 0;
}
