/* velo's native front-end: see front.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "events.h"
#include "../common/vlog.h"
#include "front.h"
#include "monitor.h"

/* The fast paths. Each is defined in its own file; none is required: an empty table sends every call to Node. */
struct front_cmd {
  const char *topic; /* NULL for a top-level command */
  const char *verb;
  front_fn fn;
};

static const struct front_cmd COMMANDS[] = {
#include "commands.inc"
    {NULL, NULL, NULL},
};

/* native/build/velo → the package root two levels up */
static char *package_root(void) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return NULL;
  exe[n] = 0;
  for (int i = 0; i < 3; i++) {
    char *s = strrchr(exe, '/');
    if (!s) return NULL;
    *s = 0;
  }
  return strdup(exe[0] ? exe : "/");
}

static int run_node(const char *root, int argc, char **argv) {
  char script[PATH_MAX];
  snprintf(script, sizeof script, "%s/bin/velo.js", root);
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (!args) return front_error(false, "INTERNAL", "out of memory", NULL);
  args[0] = "node";
  args[1] = script;
  for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
  execvp("node", args);
  char msg[PATH_MAX + 64];
  snprintf(msg, sizeof msg, "cannot run node (%s): %s", script, strerror(errno));
  return front_error(false, "NATIVE", msg, "install Node.js 20 or newer and put it on PATH");
}

/* velo's own processes never run with a velo shim preloaded. A shell with the inception hook active (or a
 * velo call inside a projected tree) has it in LD_PRELOAD; the shim hides velo's marks (the skeleton's
 * stamp, the placeholders' xattrs) from every program, velo included, so `velo run` would see no
 * projection and `velo wake` would find no placeholder to materialize. Drop it and start again: the
 * environment a projected program gets is rebuilt by `velo run` anyway. */
static void unshim(char **argv) {
  const char *pre = getenv("LD_PRELOAD");
  if (!pre || !strstr(pre, "libvelo-shim.so")) return;
  char *out = malloc(strlen(pre) + 1);
  if (!out) return;
  size_t n = 0;
  int dropped = 0;
  for (const char *p = pre; *p;) {
    size_t l = strcspn(p, ": ");
    const char *base = p + l;
    while (base > p && base[-1] != '/') base--;
    if ((size_t)(p + l - base) == strlen("libvelo-shim.so") && !strncmp(base, "libvelo-shim.so", l - (size_t)(base - p))) {
      dropped = 1;
    } else if (l) {
      if (n) out[n++] = ':';
      memcpy(out + n, p, l);
      n += l;
    }
    p += l;
    if (*p) p++;
  }
  out[n] = 0;
  if (!dropped) {
    free(out);
    return;
  }
  if (n) setenv("LD_PRELOAD", out, 1);
  else unsetenv("LD_PRELOAD");
  free(out);
  /* the raw system call: the shim's execve wrapper would put itself back into the environment */
  extern char **environ;
  syscall(SYS_execve, "/proc/self/exe", argv, environ);
  /* cannot re-exec: carry on (the Node CLI gets the cleaned environment) */
}

int main(int argc, char **argv) {
  unshim(argv);
  /* with structured logs on, the call's trace id, for every process it starts (docs/operations.md); off, nothing is
   * added to the environment a program under `velo run` sees */
  if (vlog_json()) vlog_trace();
  char *root = package_root();
  if (!root) return front_error(false, "INTERNAL", "cannot find velo's package root from /proc/self/exe", NULL);
  /* the Node CLI's way into the sandbox lifecycle (sandbox_internal.c): served here whatever VELO_NATIVE says */
  /* Node's way into the event journal (events.c, its one writer): __event --home H TYPE ACTION NAME [K=V]... */
  if (argc >= 7 && !strcmp(argv[1], "__event") && !strcmp(argv[2], "--home")) {
    event_emit(argv[3], argv[4], argv[5], argv[6], (const char *const *)argv + 7, argc - 7);
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "__monitor")) {
    struct front_ctx ctx = {.pkgroot = root, .argv0 = argv[0]};
    return monitor_main(&ctx, argc - 2, argv + 2);
  }
  if (argc >= 2 && !strcmp(argv[1], "__sandbox")) {
    struct front_ctx ctx = {.pkgroot = root, .argv0 = argv[0]};
    return front_sandbox_internal(&ctx, argc - 2, argv + 2);
  }
  const char *native = getenv("VELO_NATIVE");
  if (!native || strcmp(native, "0")) {
    for (const struct front_cmd *c = COMMANDS; c->fn; c++) {
      int words = c->topic ? 2 : 1;
      if (argc <= words) continue;
      if (c->topic ? (strcmp(argv[1], c->topic) || strcmp(argv[2], c->verb)) : strcmp(argv[1], c->verb)) continue;
      struct front_ctx ctx = {.pkgroot = root, .argv0 = argv[0]};
      int rc = c->fn(&ctx, argc - 1 - words, argv + 1 + words);
      if (rc != FRONT_FALLBACK) return rc;
      break;
    }
  }
  return run_node(root, argc, argv);
}
