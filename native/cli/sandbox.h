/* The sandbox fast paths' shared core: create, exec, remove. The container itself is velo-runtime's (rtcall.c):
 * create writes the bundle's config.json and runs `velo-runtime create` + `start`, exec execs `velo-runtime
 * exec` in place of this process, stop and rm run `velo-runtime kill` / `delete`. Node reaches the same code
 * through `velo __sandbox` (sandbox_internal.c). */
#ifndef VELO_FRONT_SANDBOX_H
#define VELO_FRONT_SANDBOX_H
#include <stdbool.h>
#include "front.h"
#include "oci.h"
#include "state.h"

/* A result code for "Node serves this call" inside the fast paths (nothing has been changed yet). */
#define SB_FALLBACK FRONT_FALLBACK

struct create_opts {
  const char *name, *image, *profile, *memory, *pids, *cpus, *hostname, *backend, *userns, *network;
  const char *const *publish;
  int n_publish;
  const char *const *env;
  int n_env;
  const char *const *mounts;
  int n_mounts;
  /* the tenant runs a command: an image ENTRYPOINT goes before it (Node's rule: falls back) */
  bool runs_command;
  /* a main command (create NAME -- CMD, run -d): its argv, -w, --rm; the user must resolve to root */
  const char *const *main_argv;
  int main_argc;
  const char *main_workdir, *main_user;
  bool auto_remove;
};

struct timing {
  const char *key;
  double ms;
};

struct create_result {
  struct tstate st;
  char *profile_name;
  struct timing timings[8];
  int n_timings;
};

/* Called once the state is known and before anything is changed: SB_FALLBACK hands the call to Node. */
typedef int (*create_check)(const struct tstate *st, void *arg);

/* createSandbox. Returns 0, SB_FALLBACK (before any side effect), or an exit code with the error rendered. */
int sb_create(const struct front_ctx *ctx, const char *home, const struct create_opts *o, bool json, create_check check,
              void *check_arg, struct create_result *r);

/* Can the fast path serve these exec options for this state (no -t; the user root: a name needs the tenant's
 * /etc/passwd; values Node would accept)? run checks before it creates anything. */
bool sb_exec_servable(const struct tstate *s, const char *workdir, const char *user, const char *const *env, int n_env,
                      const char *const *argv, int argc);

/* Signal the tenant's init (velo-runtime kill) and wait up to timeout_ms. 0 exited, 2 timeout, 3 gone;
 * otherwise *rendered = true and the return value is the exit code of the rendered error. */
int sb_kill(const struct front_ctx *ctx, const char *home, const struct tstate *s, int sig, int timeout_ms, bool json, bool *rendered);

/* removeSandbox for a tenant whose state was read (st) or is missing/damaged (st == NULL, force only).
 * Fills *killed and timings (runtime: velo-runtime delete --force, hold, files). Returns 0 or an exit code (error rendered);
 * *had_timings = false when the tenant dir was already gone. */
int sb_remove(const struct front_ctx *ctx, const char *home, const char *name, const struct tstate *st, bool force, bool json,
              bool *killed, struct timing tm[3], bool *had_timings);

/* Does LMDB hold a `tenant:NAME` gc hold from before state files were holds? (Node removes those.) 1 yes,
 * 0 no, < 0 cannot tell. */
int sb_legacy_hold(const char *home, const char *name);

#include "sblock.h"

/* The errors for a sandbox that is not there (STATE_NOENT) or half-made (STATE_HALF), as Node renders them. */
int sb_state_error(const char *name, int r, bool json);

/* Check NAME, find the store (--home) and read the state. 0: *s is loaded; otherwise what the command
 * returns (FRONT_FALLBACK, or the exit code of the error it rendered). */
int sb_state_load(const char *home_flag, const char *name, bool json, struct tstate *s);


#endif
