/* `velo sandbox stop [-t SECONDS] NAME` without Node: stopSandbox (src/sandbox/tenant.ts) — SIGTERM to init
 * (it forwards to every process and exits when they are gone), SIGKILL after the grace period. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "sandbox.h"
#include "util.h"

enum { F_HOME, F_TIME, F_JSON, N_FLAGS };
static const struct flag_def FLAGS[N_FLAGS] = {
    [F_HOME] = {"home", 0, true, false},
    [F_TIME] = {"time", 't', true, false},
    [F_JSON] = {"json", 0, false, false},
};

int front_sandbox_stop(const struct front_ctx *ctx, int argc, char **argv) {
  static struct parsed_args a;
  if (args_parse(FLAGS, N_FLAGS, argc, argv, &a) < 0 || a.n_args != 1) return FRONT_FALLBACK;
  const char *name = a.args[0], *tv = args_one(&a, F_TIME);
  long secs = 10;
  if (tv) {
    /* Flags.integer accepts more (a sign); the helper takes at most an hour: anything else is Node's */
    size_t d = strspn(tv, "0123456789");
    if (d == 0 || d > 4 || tv[d]) return FRONT_FALLBACK;
    secs = strtol(tv, NULL, 10);
    if (secs > 3600) return FRONT_FALLBACK;
  }
  struct tstate s;
  int r = sb_state_load(args_one(&a, F_HOME), name, a.json, &s);
  if (r) return r;
  bool was = state_running(&s), forced = false, rendered;
  if (was) {
    int k = sb_kill(ctx, &s, 15, (int)secs * 1000, a.json, &rendered);
    if (rendered) return k;
    if (k == 2) {
      forced = true;
      k = sb_kill(ctx, &s, 9, 5000, a.json, &rendered);
      if (rendered) return k;
    }
  }
  if (a.json) {
    struct jw w = {.f = stdout};
    jw_begin_obj(&w);
    jw_key(&w, "name");
    jw_str(&w, name);
    jw_key(&w, "wasRunning");
    jw_raw(&w, was ? "true" : "false");
    jw_key(&w, "forced");
    jw_raw(&w, forced ? "true" : "false");
    jw_end_obj(&w);
    fflush(stdout);
  } else if (was)
    fprintf(stderr, "stopped %s%s\n", name, forced ? " (killed after the grace period)" : "");
  else
    fprintf(stderr, "%s was not running\n", name);
  return 0;
}
