/* `velo sandbox stop [-t SECONDS] NAME` without Node — SIGTERM to init (it forwards to every process and exits when
 * they are gone), SIGKILL after the grace period, then the runtime forgets the container (the files stay). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../common/vlog.h"
#include "args.h"
#include "events.h"
#include "rtcall.h"
#include "sandbox.h"
#include "util.h"

enum { F_HOME, F_TIME, F_JSON, N_FLAGS };
static const struct flag_def FLAGS[N_FLAGS] = {
    [F_HOME] = {"home", 0, true, false},
    [F_TIME] = {"time", 't', true, false},
    [F_JSON] = {"json", 0, false, false},
};

static int stop_locked(const struct front_ctx *ctx, struct parsed_args *a, char *home, const char *name, long secs);

int front_sandbox_stop(const struct front_ctx *ctx, int argc, char **argv) {
  static struct parsed_args a;
  if (args_parse(FLAGS, N_FLAGS, argc, argv, &a) < 0 || a.n_args != 1) return FRONT_FALLBACK;
  const char *name = a.args[0], *tv = args_one(&a, F_TIME);
  long secs = 10;
  if (tv) {
    /* Flags.integer accepts more (a sign); the wait is at most an hour: anything else is Node's */
    size_t d = strspn(tv, "0123456789");
    if (d == 0 || d > 4 || tv[d]) return FRONT_FALLBACK;
    secs = strtol(tv, NULL, 10);
    if (secs > 3600) return FRONT_FALLBACK;
  }
  struct tstate s;
  int r = sb_state_load(args_one(&a, F_HOME), name, a.json, &s);
  if (r) return r;
  /* --rm with -d: a stop also removes it, which is Node's rm (the stop command there does both) */
  if (s.auto_remove) return FRONT_FALLBACK;
  /* under the sandbox's lock, its state read again: a start or stop meanwhile is seen as it ended */
  char *home = front_home(args_one(&a, F_HOME));
  int lk = sb_lock(home, name);
  if (lk < 0) return errno == ENOENT ? sb_state_error(name, STATE_NOENT, a.json) : front_sys_error(a.json, errno, "cannot lock the sandbox");
  /* and under its pause holds' lock (src/sandbox/pause.ts), so that no snapshot or commit begins to hold it while it
   * stops; one held paused is Node's (it waits for a snapshot or commit that reads it, and forgets the holds) */
  char p[4400];
  snprintf(p, sizeof p, "%s/tenants/%s/pause-lock", home, name);
  int plk = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  while (plk >= 0 && flock(plk, LOCK_EX) < 0 && errno == EINTR) {
  }
  snprintf(p, sizeof p, "%s/tenants/%s/pause-holds", home, name);
  if (plk < 0 || access(p, F_OK) == 0) {
    if (plk >= 0) close(plk);
    sb_unlock(lk);
    return FRONT_FALLBACK;
  }
  int rc = stop_locked(ctx, &a, home, name, secs);
  close(plk);
  sb_unlock(lk);
  return rc;
}

static int stop_locked(const struct front_ctx *ctx, struct parsed_args *a, char *home, const char *name, long secs) {
  struct tstate s;
  int r = sb_state_load(args_one(a, F_HOME), name, a->json, &s);
  if (r) return r;
  bool was = state_running(&s), forced = false, rendered;
  if (was) {
    int k = sb_kill(ctx, home, &s, 15, (int)secs * 1000, a->json, &rendered);
    if (rendered) return k;
    if (k == 2) {
      forced = true;
      k = sb_kill(ctx, home, &s, 9, 5000, a->json, &rendered);
      if (rendered) return k;
    }
    /* init is gone: the runtime drops the container (cgroups, its record); the tenant's files stay for start */
    char err[2048];
    if (sb_rt_delete(ctx, home, name, err, sizeof err) < 0) {
      char msg[2200];
      snprintf(msg, sizeof msg, "cannot stop sandbox %s: %s", name, err);
      return front_error(a->json, "NATIVE", msg, NULL);
    }
    event_emit(home, "sandbox", "stop", name, NULL, 0);
  }
  if (a->json) {
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
    vlog("info", "velo", "stopped %s%s", name, forced ? " (killed after the grace period)" : "");
  else
    vlog("info", "velo", "%s was not running", name);
  return 0;
}
