#include "plan.h"

#include <stdlib.h>
#include <string.h>

static int push(char ***list, size_t *n, char *v, struct velo_err *e) {
  if (*n >= PLAN_MAX_LIST) return velo_fail(e, 0, "plan: too many entries");
  char **l = realloc(*list, sizeof(char *) * (*n + 2));
  if (!l) return VELO_FAIL_ERRNO(e, "plan: out of memory");
  l[(*n)++] = v;
  l[*n] = NULL;
  *list = l;
  return 0;
}

static int parse_u64(const char *s, unsigned long long *out, int base) {
  char *end;
  errno = 0;
  *out = strtoull(s, &end, base);
  return (errno || *s == 0 || *end != 0) ? -1 : 0;
}

/* Undo the escapes of `env` and `arg` values (planEscape in src/sandbox/tenant.ts): `\\` → `\`, `\n` → newline.
 * Any other backslash sequence is an error: the writer never makes one, so it is not our plan. */
static int unescape(char *v, struct velo_err *e) {
  char *w = v;
  for (char *r = v; *r; r++) {
    if (*r != '\\') {
      *w++ = *r;
      continue;
    }
    r++;
    if (*r == '\\') *w++ = '\\';
    else if (*r == 'n') *w++ = '\n';
    else return velo_fail(e, 0, "plan: bad escape in a value");
  }
  *w = 0;
  return 0;
}

int plan_parse(char *text, struct plan *p, struct velo_err *e) {
  memset(p, 0, sizeof *p);
  p->seccomp = 1;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (*line == 0 || *line == '#') continue;
    char *v = strchr(line, ' ');
    if (!v) return velo_fail(e, 0, "plan: line without value: %.64s", line);
    *v++ = 0;
    const char *k = line;
    unsigned long long n;
    if (!strcmp(k, "name")) p->name = v;
    else if (!strcmp(k, "hostname")) p->hostname = v;
    else if (!strcmp(k, "root")) p->root = v;
    else if (!strcmp(k, "upper")) p->upper = v;
    else if (!strcmp(k, "work")) p->work = v;
    else if (!strcmp(k, "cwd")) p->cwd = v;
    else if (!strcmp(k, "lower")) { if (push(&p->lowers, &p->n_lowers, v, e) < 0) return -1; }
    else if (!strcmp(k, "cgroup")) { if (push(&p->cgroups, &p->n_cgroups, v, e) < 0) return -1; }
    else if (!strcmp(k, "env")) { if (unescape(v, e) < 0 || push(&p->env, &p->n_env, v, e) < 0) return -1; }
    else if (!strcmp(k, "arg")) { if (unescape(v, e) < 0 || push(&p->argv, &p->n_argv, v, e) < 0) return -1; }
    else if (!strcmp(k, "bind")) {
      char *dst = strchr(v, '\t');
      char *mode = dst ? strchr(dst + 1, '\t') : NULL;
      if (!dst || !mode) return velo_fail(e, 0, "plan: bad bind line");
      *dst++ = 0;
      *mode++ = 0;
      if (*v != '/' || *dst != '/') return velo_fail(e, 0, "plan: bind paths must be absolute");
      /* fail closed: only the two documented modes, never "anything but ro is writable" */
      if (strcmp(mode, "ro") && strcmp(mode, "rw")) return velo_fail(e, 0, "plan: bind mode must be ro or rw, got '%s'", mode);
      struct bind *b = realloc(p->binds, sizeof *b * (p->n_binds + 1));
      if (!b) return VELO_FAIL_ERRNO(e, "plan: out of memory");
      p->binds = b;
      b[p->n_binds++] = (struct bind){.src = v, .dst = dst, .ro = !strcmp(mode, "ro")};
    } else if (!strcmp(k, "pid")) {
      if (parse_u64(v, &n, 10) < 0 || n < 2 || n > 4194304) return velo_fail(e, 0, "plan: bad pid %s", v);
      p->pid = (pid_t)n;
    } else if (!strcmp(k, "pidstart")) {
      if (parse_u64(v, &p->pid_start, 10) < 0) return velo_fail(e, 0, "plan: bad pidstart %s", v);
    } else if (!strcmp(k, "user")) {
      unsigned long long u, g;
      char *c = strchr(v, ':');
      if (!c) return velo_fail(e, 0, "plan: user must be UID:GID");
      *c = 0;
      if (parse_u64(v, &u, 10) < 0 || parse_u64(c + 1, &g, 10) < 0 || u > 0xfffffffe || g > 0xfffffffe)
        return velo_fail(e, 0, "plan: bad user");
      p->uid = (uid_t)u;
      p->gid = (gid_t)g;
      p->has_user = 1;
    } else if (!strcmp(k, "caps")) {
      if (parse_u64(v, &n, 16) < 0) return velo_fail(e, 0, "plan: bad caps %s", v);
      p->caps = n;
      p->has_caps = 1;
    } else if (!strcmp(k, "seccomp")) {
      if (!strcmp(v, "default")) p->seccomp = 1;
      else if (!strcmp(v, "unconfined")) p->seccomp = 0;
      else return velo_fail(e, 0, "plan: unknown seccomp policy %s", v);
      p->has_seccomp = 1;
    } else if (!strcmp(k, "tty")) p->tty = !strcmp(v, "1");
    else if (!strcmp(k, "net")) {
      if (strcmp(v, "loopback") && strcmp(v, "none")) return velo_fail(e, 0, "plan: unknown net mode %s", v);
      p->net_none = !strcmp(v, "none");
    }
    else return velo_fail(e, 0, "plan: unknown key %s", k);
  }
  /* Fail closed: the security settings must be stated, never defaulted by omission. */
  if (!p->has_caps) return velo_fail(e, 0, "plan: no caps line");
  if (!p->has_seccomp) return velo_fail(e, 0, "plan: no seccomp line");
  /* limits too: without a cgroup line the tenant would run in velo's own cgroup, unlimited */
  if (!p->n_cgroups) return velo_fail(e, 0, "plan: no cgroup line");
  return 0;
}
