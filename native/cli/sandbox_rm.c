/* `velo sandbox rm [-f] NAME...` without Node: velo-runtime delete --force (every process, the cgroups), then the
 * tenant's files — the steps of removeSandbox (src/sandbox/tenant.ts). Every name is checked first; the call
 * goes to Node, before anything is removed, when one of them needs it (a bad name, damaged or FUSE-backed
 * state, a legacy LMDB gc hold to delete). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/vlog.h"
#include "args.h"
#include "sandbox.h"
#include "util.h"

enum { F_HOME, F_FORCE, F_JSON, N_FLAGS };
static const struct flag_def FLAGS[N_FLAGS] = {
    [F_HOME] = {"home", 0, true, false},
    [F_FORCE] = {"force", 'f', false, false},
    [F_JSON] = {"json", 0, false, false},
};

int front_sandbox_rm(const struct front_ctx *ctx, int argc, char **argv) {
  static struct parsed_args a;
  if (args_parse(FLAGS, N_FLAGS, argc, argv, &a) < 0 || a.n_args < 1) return FRONT_FALLBACK;
  bool force = a.flags[F_FORCE].count > 0, json = a.json;
  char *home = front_home(args_one(&a, F_HOME));
  if (!home) return FRONT_FALLBACK;
  struct tstate *st = calloc((size_t)a.n_args, sizeof *st);
  int *rs = calloc((size_t)a.n_args, sizeof *rs);
  if (!st || !rs) return FRONT_FALLBACK;
  for (int i = 0; i < a.n_args; i++) {
    const char *name = a.args[i];
    if (!name_valid(name)) return FRONT_FALLBACK;
    /* a name given twice: Node removes it, then fails on the second one (NOT_FOUND); every state here is read
     * up front, so the second would find the first one's stale state and "remove" it again */
    for (int j = 0; j < i; j++)
      if (!strcmp(a.args[j], name)) return FRONT_FALLBACK;
    rs[i] = state_read(home, name, &st[i]);
    /* Node removes a half-made or unreadable tenant only with -f, and then also drops a FUSE mount reference */
    if (rs[i] == STATE_UNSERVED || rs[i] == STATE_HALF) return FRONT_FALLBACK;
    if (rs[i] == STATE_OK && st[i].backend && strcmp(st[i].backend, "farm")) return FRONT_FALLBACK;
    if (rs[i] == STATE_OK && sb_legacy_hold(home, name) != 0) return FRONT_FALLBACK;
  }
  /* the JSON result is printed only when every name is done (an error renders instead of it, as in Node) */
  char *out = NULL;
  size_t out_len = 0;
  struct jw w = {.f = open_memstream(&out, &out_len)};
  if (!w.f) return FRONT_FALLBACK;
  bool opened = false;
  for (int i = 0; i < a.n_args; i++) {
    const char *name = a.args[i];
    double t0 = now_ms();
    if (rs[i] == STATE_NOENT) return sb_state_error(name, rs[i], json);
    bool killed, had;
    struct timing tm[3];
    int rc = sb_remove(ctx, home, name, &st[i], force, json, &killed, tm, &had);
    if (rc) return rc;
    double ms = ms_since(t0);
    if (!json) {
      vlog("info", "velo", "removed %s", name);
      continue;
    }
    if (!opened) jw_begin_arr(&w), opened = true;
    jw_begin_obj(&w);
    jw_key(&w, "name");
    jw_str(&w, name);
    jw_key(&w, "killed");
    jw_raw(&w, killed ? "true" : "false");
    jw_key(&w, "ms");
    jw_num(&w, ms);
    if (had) {
      jw_key(&w, "timings");
      jw_begin_obj(&w);
      for (int k = 0; k < 3; k++) {
        jw_key(&w, tm[k].key);
        jw_num(&w, tm[k].ms);
      }
      jw_end_obj(&w);
    }
    jw_end_obj(&w);
  }
  if (opened) jw_end_arr(&w);
  fclose(w.f);
  fwrite(out, 1, out_len, stdout);
  fflush(stdout);
  return 0;
}
