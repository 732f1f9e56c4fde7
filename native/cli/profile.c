#include "profile.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool ref_is_name(const char *r) {
  size_t n = strlen(r);
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char c = r[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}

/* a string without NUL, newline or tab (the profile schema's NO_CTL), re-checked: the cache is only a cache */
static bool clean(const char *s) { return !strpbrk(s, "\n\t"); }

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
  if (!ref_is_name(ref)) return -1;
  char src[4200], cache[4200];
  snprintf(src, sizeof src, "%s/profiles/%s.json", pkgroot, ref);
  snprintf(cache, sizeof cache, "%s/cache/profiles/%s.json", home, ref);
  struct stat st;
  if (stat(src, &st) < 0 || !S_ISREG(st.st_mode)) return -1;
  int fd = open(cache, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
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
  p->name = strdup(name);
  p->network = strdup(net);
  p->seccomp = strdup(sec);
  if (!opt(pr, "hostname", &p->hostname) || !opt(pr, "user", &p->user) || !opt(pr, "workdir", &p->workdir)) goto out;
  if (!json_object_object_get_ex(pr, "limits", &v) || !json_object_is_type(v, json_type_object)) goto out;
  json_object_object_foreach(v, lk, lv) {
    const char *key = !strcmp(lk, "memory") ? "memory" : !strcmp(lk, "pids") ? "pids" : !strcmp(lk, "cpus") ? "cpus" : NULL;
    if (!key || p->n_limits >= 3 || !(json_object_is_type(lv, json_type_int) || json_object_is_type(lv, json_type_double))) goto out;
    double d = json_object_get_double(lv);
    if (!(d > 0)) goto out;
    p->limits[p->n_limits++] = (struct tlimit){key, d};
  }
  if (!json_object_object_get_ex(pr, "env", &v) || !json_object_is_type(v, json_type_object)) goto out;
  json_object_object_foreach(v, ek, ev) {
    if (!json_object_is_type(ev, json_type_string) || !clean(json_object_get_string(ev)) || !clean(ek)) goto out;
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
    if (!s || !t || s[0] != '/' || t[0] != '/' || !json_object_object_get_ex(m, "readonly", &ro) || !json_object_is_type(ro, json_type_boolean)) goto out;
    p->mounts[i] = (struct tmount){strdup(s), strdup(t), json_object_get_boolean(ro)};
  }
  if (!json_object_object_get_ex(pr, "capabilities", &v) || !json_object_is_type(v, json_type_array)) goto out;
  p->caps.v = calloc(1, sizeof(char *));
  for (size_t i = 0; i < json_object_array_length(v); i++) {
    json_object *e = json_object_array_get_idx(v, i);
    if (!json_object_is_type(e, json_type_string) || strlist_push(&p->caps, json_object_get_string(e)) < 0) goto out;
  }
  rc = 0;
out:
  if (c) json_object_put(c);
  return rc;
}
