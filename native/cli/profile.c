#include "profile.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* a string without NUL, newline or tab (the profile schema's NO_CTL), re-checked: the cache is only a cache */
static bool clean(const char *s) { return !strpbrk(s, "\n\t"); }

/* The cache lives in the store, and the store is not where the profile's authority comes from: Node reads the
 * profile from the package's profiles/ dir and validates it on every create, so a store someone else can write
 * to cannot hand a tenant more than the profile grants through Node. The fast path holds the compiled copy to
 * the same rules: it must be this user's own file, writable by no one else, and every value must be one Node's
 * validateProfile (src/profiles/profile.ts) could have produced; anything else is not served (Node validates
 * the profile again and rewrites the cache). */

/* validateProfile's FORBIDDEN_CAPS: never grantable through a profile */
static const char *const FORBIDDEN_CAPS[] = {"SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE",  "SYS_BOOT",
                                             "SYS_TIME",  "MKNOD",      "MAC_ADMIN", "MAC_OVERRIDE", "BPF",
                                             "PERFMON",   "DAC_READ_SEARCH", "SYSLOG", "NET_ADMIN", "LINUX_IMMUTABLE"};

static bool in_set(char c, const char *extra) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr(extra, c));
}

/* /^[A-Za-z_][A-Za-z0-9_]*$/ (ENV_KEY) */
static bool env_key_ok(const char *k) {
  if (!*k || (k[0] >= '0' && k[0] <= '9')) return false;
  for (; *k; k++)
    if (!in_set(*k, "_")) return false;
  return true;
}

/* /^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/ */
static bool hostname_ok(const char *h) {
  size_t n = strlen(h);
  if (n == 0 || n > 64 || !in_set(h[0], "")) return false;
  for (size_t i = 1; i < n; i++)
    if (!in_set(h[i], ".-")) return false;
  return true;
}

/* one side of /^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/ */
static bool user_part_ok(const char *u, size_t n) {
  if (n == 0 || !in_set(u[0], "_")) return false;
  for (size_t i = 1; i < n; i++)
    if (!in_set(u[i], "_.-")) return false;
  return true;
}

static bool user_ok(const char *u) {
  const char *c = strchr(u, ':');
  if (!c) return user_part_ok(u, strlen(u));
  return user_part_ok(u, (size_t)(c - u)) && user_part_ok(c + 1, strlen(c + 1));
}

/* checkPathValue: non-empty, absolute, no '..' component (NUL, newline and tab: jstr) */
static bool path_ok(const char *v) {
  if (v[0] != '/') return false;
  for (const char *c = v; (c = strstr(c, "..")); c += 2)
    if ((c == v || c[-1] == '/') && (c[2] == 0 || c[2] == '/')) return false;
  return true;
}

static bool name_ok(const char *r) {
  size_t n = strlen(r);
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char c = r[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}

/* the limits as parseBytes / parsePids / parseCpus return them */
static bool limit_ok(const char *key, double d) {
  if (!strcmp(key, "memory")) return d == floor(d) && d >= 4.0 * 1024 * 1024 && d <= 9007199254740991.0;
  if (!strcmp(key, "pids")) return d == floor(d) && d >= 8 && d <= 4194304;
  return isfinite(d) && d >= 0.01 && d <= 1024;
}

static const char *jstr(json_object *o, const char *k) {
  json_object *v;
  if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string)) return NULL;
  const char *s = json_object_get_string(v);
  return (size_t)json_object_get_string_len(v) == strlen(s) && clean(s) ? s : NULL;
}

static bool opt(json_object *o, const char *k, char **out) {
  json_object *v;
  *out = NULL;
  if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null)) return true;
  const char *s = jstr(o, k);
  return s && (*out = strdup(s));
}

static bool stat_matches(json_object *c, const struct stat *st) {
  char b[5][48];
  snprintf(b[0], sizeof b[0], "%llu", (unsigned long long)st->st_dev);
  snprintf(b[1], sizeof b[1], "%llu", (unsigned long long)st->st_ino);
  snprintf(b[2], sizeof b[2], "%lld", (long long)st->st_size);
  snprintf(b[3], sizeof b[3], "%lld%09ld", (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
  snprintf(b[4], sizeof b[4], "%lld%09ld", (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
  static const char *const keys[] = {"dev", "ino", "size", "mtimeNs", "ctimeNs"};
  for (int i = 0; i < 5; i++) {
    const char *v = jstr(c, keys[i]);
    /* BigInt → string has no leading zeros; strip ours (a time before 1 s past the epoch is not a concern) */
    const char *mine = b[i];
    while (mine[0] == '0' && mine[1]) mine++;
    if (!v || strcmp(v, mine)) return false;
  }
  return true;
}

int profile_load_cached(const char *pkgroot, const char *home, const char *ref, struct profile *p) {
  memset(p, 0, sizeof *p);
  if (!name_ok(ref)) return -1;
  char src[4200], cache[4200];
  snprintf(src, sizeof src, "%s/profiles/%s.json", pkgroot, ref);
  snprintf(cache, sizeof cache, "%s/cache/profiles/%s.json", home, ref);
  struct stat st;
  if (stat(src, &st) < 0 || !S_ISREG(st.st_mode)) return -1;
  int fd = open(cache, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat cst;
  if (fstat(fd, &cst) < 0 || !S_ISREG(cst.st_mode) || cst.st_uid != geteuid() || (cst.st_mode & 022)) {
    close(fd);
    return -1;
  }
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0 || n == sizeof buf - 1) return -1;
  buf[n] = 0;
  json_object *c = json_tokener_parse(buf), *pr, *v;
  int rc = -1;
  if (!c || !json_object_is_type(c, json_type_object)) goto out;
  const char *source = jstr(c, "source");
  if (!source || strcmp(source, src) || !stat_matches(c, &st)) goto out;
  if (!json_object_object_get_ex(c, "profile", &pr) || !json_object_is_type(pr, json_type_object)) goto out;
  const char *name = jstr(pr, "name"), *net = jstr(pr, "network"), *sec = jstr(pr, "seccomp");
  if (!name || !net || !sec || (strcmp(net, "loopback") && strcmp(net, "none")) || (strcmp(sec, "default") && strcmp(sec, "unconfined"))) goto out;
  if (!name_ok(name)) goto out;
  p->name = strdup(name);
  p->network = strdup(net);
  p->seccomp = strdup(sec);
  if (!opt(pr, "hostname", &p->hostname) || !opt(pr, "user", &p->user) || !opt(pr, "workdir", &p->workdir)) goto out;
  p->userns = true; /* the default (validateProfile writes it always; absent, fail closed) */
  if (json_object_object_get_ex(pr, "userns", &v)) {
    if (!json_object_is_type(v, json_type_boolean)) goto out;
    p->userns = json_object_get_boolean(v);
  }
  if ((p->hostname && !hostname_ok(p->hostname)) || (p->user && !user_ok(p->user)) || (p->workdir && !path_ok(p->workdir))) goto out;
  if (!json_object_object_get_ex(pr, "limits", &v) || !json_object_is_type(v, json_type_object)) goto out;
  json_object_object_foreach(v, lk, lv) {
    const char *key = !strcmp(lk, "memory") ? "memory" : !strcmp(lk, "pids") ? "pids" : !strcmp(lk, "cpus") ? "cpus" : NULL;
    if (!key || p->n_limits >= 3 || !(json_object_is_type(lv, json_type_int) || json_object_is_type(lv, json_type_double))) goto out;
    double d = json_object_get_double(lv);
    if (!limit_ok(key, d)) goto out;
    for (int i = 0; i < p->n_limits; i++)
      if (!strcmp(p->limits[i].key, key)) goto out;
    p->limits[p->n_limits++] = (struct tlimit){key, d};
  }
  if (!json_object_object_get_ex(pr, "env", &v) || !json_object_is_type(v, json_type_object)) goto out;
  json_object_object_foreach(v, ek, ev) {
    if (!json_object_is_type(ev, json_type_string) || !clean(json_object_get_string(ev)) || !env_key_ok(ek) ||
        (size_t)json_object_get_string_len(ev) != strlen(json_object_get_string(ev)))
      goto out;
    char *kv;
    if (asprintf(&kv, "%s=%s", ek, json_object_get_string(ev)) < 0 || strlist_push(&p->env, kv) < 0) goto out;
    free(kv);
  }
  if (!p->env.v && !(p->env.v = calloc(1, sizeof(char *)))) goto out;
  if (!json_object_object_get_ex(pr, "mounts", &v) || !json_object_is_type(v, json_type_array)) goto out;
  p->n_mounts = json_object_array_length(v);
  p->mounts = calloc(p->n_mounts + 1, sizeof *p->mounts);
  if (!p->mounts) goto out;
  for (size_t i = 0; i < p->n_mounts; i++) {
    json_object *m = json_object_array_get_idx(v, i), *ro;
    const char *s = m ? jstr(m, "source") : NULL, *t = m ? jstr(m, "target") : NULL;
    if (!s || !t || !path_ok(s) || !path_ok(t) || !json_object_object_get_ex(m, "readonly", &ro) || !json_object_is_type(ro, json_type_boolean))
      goto out;
    p->mounts[i] = (struct tmount){strdup(s), strdup(t), json_object_get_boolean(ro), NULL};
  }
  if (!json_object_object_get_ex(pr, "capabilities", &v) || !json_object_is_type(v, json_type_array)) goto out;
  p->caps.v = calloc(1, sizeof(char *));
  for (size_t i = 0; i < json_object_array_length(v); i++) {
    json_object *e = json_object_array_get_idx(v, i);
    if (!json_object_is_type(e, json_type_string)) goto out;
    const char *cap = json_object_get_string(e);
    for (size_t f = 0; f < sizeof FORBIDDEN_CAPS / sizeof *FORBIDDEN_CAPS; f++)
      if (!strcmp(cap, FORBIDDEN_CAPS[f])) goto out;
    for (size_t j = 0; j < p->caps.n; j++)
      if (!strcmp(cap, p->caps.v[j])) goto out; /* validateProfile drops repeats */
    if (strlist_push(&p->caps, cap) < 0) goto out;
  }
  rc = 0;
out:
  if (c) json_object_put(c);
  return rc;
}
