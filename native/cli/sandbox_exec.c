/* `velo sandbox exec NAME [-e K=V]... [-w DIR] [-u 0|root] -- CMD ARGS...` without Node: read the state, write
 * the process JSON (oci.c) and exec `velo-runtime exec` in place of this process — no extra process; stdio,
 * signals and the exit code (128+N for a signal) pass through. -t, a user name (the tenant's /etc/passwd) and
 * anything unusual go to Node, which comes back here through `velo __sandbox exec`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "rtcall.h"
#include "sandbox.h"
#include "util.h"

enum { F_HOME, F_TTY, F_INTERACTIVE, F_WORKDIR, F_USER, F_ENV, N_FLAGS };
static const struct flag_def FLAGS[N_FLAGS] = {
    [F_HOME] = {"home", 0, true, false},
    [F_TTY] = {"tty", 't', false, false},
    [F_INTERACTIVE] = {"interactive", 'i', false, false},
    [F_WORKDIR] = {"workdir", 'w', true, false},
    [F_USER] = {"user", 'u', true, false},
    [F_ENV] = {"env", 'e', true, true},
};

/* the errors execSandbox renders before anything happens: unknown / half-made / stopped sandbox */
int sb_state_error(const char *name, int r, bool json) {
  char msg[400], sug[400];
  if (r == STATE_NOENT) {
    snprintf(msg, sizeof msg, "no sandbox named \"%s\"", name);
    return front_error(json, "NOT_FOUND", msg, "list sandboxes with `velo sandbox ls`; create one with `velo sandbox create NAME`");
  }
  snprintf(msg, sizeof msg, "sandbox %s is being created or was left half-made", name);
  snprintf(sug, sizeof sug, "wait, or remove it with `velo sandbox rm -f %s`", name);
  return front_error(json, "STATE", msg, sug);
}

/* see sandbox.h */
int sb_state_load(const char *home_flag, const char *name, bool json, struct tstate *s) {
  /* JSON.stringify(name) in the NOT_FOUND message: only names that need no escaping are served */
  if (!name_valid(name)) return FRONT_FALLBACK;
  char *home = front_home(home_flag);
  if (!home) return FRONT_FALLBACK;
  int r = state_read(home, name, s);
  free(home);
  if (r == STATE_UNSERVED) return FRONT_FALLBACK;
  if (r != STATE_OK) return sb_state_error(name, r, json);
  return 0;
}

int front_sandbox_exec(const struct front_ctx *ctx, int argc, char **argv) {
  (void)ctx;
  static struct parsed_args a;
  argv = args_docker_shape(FLAGS, N_FLAGS, argc, argv, ARGS_SHAPE_NAME, &argc);
  if (args_parse(FLAGS, N_FLAGS, argc, argv, &a) < 0 || a.n_args < 1 || a.flags[F_TTY].count) return FRONT_FALLBACK;
  const char *name = a.args[0];
  struct tstate s;
  int r = sb_state_load(args_one(&a, F_HOME), name, false, &s);
  if (r) return r;
  if (!state_running(&s)) {
    char msg[300], sug[300];
    snprintf(msg, sizeof msg, "sandbox %s is stopped", name);
    snprintf(sug, sizeof sug, "start it with `velo sandbox start %s`", name);
    return front_error(false, "STATE", msg, sug);
  }
  if (!sb_exec_servable(&s, args_one(&a, F_WORKDIR), args_one(&a, F_USER), a.flags[F_ENV].values, a.flags[F_ENV].count, a.args + 1,
                        a.n_args - 1))
    return FRONT_FALLBACK;
  char *home = front_home(args_one(&a, F_HOME));
  struct oci_exec x = {.workdir = args_one(&a, F_WORKDIR), .env = a.flags[F_ENV].values, .n_env = a.flags[F_ENV].count,
                       .argv = a.args + 1, .argc = a.n_args - 1};
  return sb_exec_wait(home, &s, &x);
}
