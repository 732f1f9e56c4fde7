/* velo-runtime: the OCI runtime CLI (runtime-spec 1.x, Linux). Global flags as runc takes them (Docker,
 * containerd and Podman pass --root, --log, --log-format, --systemd-cgroup before the verb), then one verb. */
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "rt.h"

int parse_flags(int argc, char **argv, const struct flag *flags, char **pos, int max_pos, const char *verb, int *rest) {
  int np = 0;
  for (int i = 0; i < argc; i++) {
    char *a = argv[i];
    if (a[0] != '-' || !a[1] || !strcmp(a, "--")) {
      if (!strcmp(a, "--")) {
        if (++i >= argc) break;
        a = argv[i];
      }
      if (np >= max_pos) {
        rt_err("%s: unexpected argument %s (usage: see velo-runtime %s --help)", verb, a, verb);
        return -1;
      }
      pos[np++] = a;
      /* exec ID CMD...: everything after the id is the command, flags included */
      if (rest) {
        *rest = i + 1;
        return np;
      }
      continue;
    }
    const char *name = a + 1 + (a[1] == '-');
    const char *eq = strchr(name, '=');
    size_t nl = eq ? (size_t)(eq - name) : strlen(name);
    const struct flag *f = NULL;
    for (const struct flag *g = flags; g->name; g++) {
      if ((strlen(g->name) == nl && !strncmp(g->name, name, nl)) || (g->alias && nl == 1 && name[0] == g->alias && a[1] != '-')) {
        f = g;
        break;
      }
    }
    if (!f) {
      rt_err("%s: unknown flag %.*s (see velo-runtime %s --help)", verb, (int)(nl + 1 + (a[1] == '-')), a, verb);
      return -1;
    }
    if (f->takes_value || f->list) {
      const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) {
        rt_err("%s: flag %s needs a value", verb, a);
        return -1;
      }
      if (f->list) {
        if (*f->n_list >= f->max_list) {
          rt_err("%s: flag %s given more than %d times", verb, a, f->max_list);
          return -1;
        }
        f->list[(*f->n_list)++] = v;
      } else *f->value = v;
    } else if (f->set) {
      if (eq && !strcmp(eq + 1, "false")) *f->set = false;
      else if (!eq || !strcmp(eq + 1, "true")) *f->set = true;
      else {
        rt_err("%s: flag %.*s takes true or false", verb, (int)nl, name);
        return -1;
      }
    }
  }
  if (rest) *rest = argc;
  return np;
}

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *usage;
} VERBS[] = {
    {"create", cmd_create, "create [--bundle DIR] [--pid-file F] [--console-socket S] [--no-pivot] [--no-new-keyring] [--preserve-fds N] ID"},
    {"run", cmd_run, "run [--bundle DIR] [--pid-file F] [--console-socket S] [--detach] [--no-pivot] [--no-new-keyring] ID"},
    {"start", cmd_start, "start ID"},
    {"state", cmd_state, "state ID"},
    {"kill", cmd_kill, "kill [--all] ID [SIGNAL]"},
    {"delete", cmd_delete, "delete [--force] ID"},
    {"exec", cmd_exec, "exec [--process F] [--detach] [--pid-file F] [--console-socket S] [--tty] [--cwd D] [--env K=V] [--user U[:G]] ID [CMD...]"},
    {"ps", cmd_ps, "ps [--format table|json] ID"},
    {"pause", cmd_pause, "pause ID"},
    {"resume", cmd_resume, "resume ID"},
    {"update", cmd_update, "update --resources F|- ID"},
    {"list", cmd_list, "list [--format table|json] [--quiet]"},
    {"features", cmd_features, "features"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: velo-runtime [--root DIR] [--log F] [--log-format text|json] [--debug] VERB ...\n\nverbs:\n");
  for (size_t i = 0; i < sizeof VERBS / sizeof *VERBS; i++) fprintf(f, "  %s\n", VERBS[i].usage);
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    const char *name = a + 1 + (a[1] == '-');
    const char *eq = strchr(name, '=');
    size_t nl = eq ? (size_t)(eq - name) : strlen(name);
#define IS(s) (nl == strlen(s) && !strncmp(name, s, nl))
    if (IS("version") || IS("v")) {
      printf("velo-runtime version %s\nspec: %s\n", RT_VERSION, RT_SPEC_VERSION);
      return 0;
    }
    if (IS("help") || IS("h")) {
      usage(stdout);
      return 0;
    }
    const char **dst = NULL;
    const char *fmt = NULL;
    if (IS("root")) dst = &G.root;
    else if (IS("log")) dst = &G.log;
    else if (IS("log-format")) dst = &fmt;
    else if (IS("criu")) dst = &fmt; /* accepted for compatibility: checkpointing is not a verb here */
    else if (IS("debug")) G.debug = !eq || strcmp(eq + 1, "false");
    else if (IS("systemd-cgroup")) G.systemd_cgroup = !eq || strcmp(eq + 1, "false");
    else if (IS("rootless")) {
      /* runc's auto|true|false: velo-runtime decides by its own uid (rootless support comes with user namespaces) */
      if (!eq && i + 1 < argc && (!strcmp(argv[i + 1], "auto") || !strcmp(argv[i + 1], "true") || !strcmp(argv[i + 1], "false"))) i++;
    } else return rt_err("unknown global flag %s (see velo-runtime --help)", a);
    if (dst) {
      const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) return rt_err("flag %s needs a value", a);
      if (dst == &fmt && IS("log-format")) {
        if (!strcmp(v, "json")) G.log_json = true;
        else if (!strcmp(v, "text")) G.log_json = false;
        else return rt_err("--log-format must be text or json, not %s", v);
      } else *dst = v;
    }
#undef IS
  }
  if (i >= argc) {
    usage(stderr);
    return 1;
  }
  if (!*G.root || G.root[0] != '/') return rt_err("--root must be an absolute path, not %s", G.root);
  for (size_t v = 0; v < sizeof VERBS / sizeof *VERBS; v++)
    if (!strcmp(argv[i], VERBS[v].name)) {
      if (i + 1 < argc && (!strcmp(argv[i + 1], "--help") || !strcmp(argv[i + 1], "-h"))) {
        printf("usage: velo-runtime %s\n", VERBS[v].usage);
        return 0;
      }
      return VERBS[v].fn(argc - i - 1, argv + i + 1);
    }
  return rt_err("unknown verb %s (see velo-runtime --help)", argv[i]);
}
