/* `velo __sandbox VERB ...`: the container steps of a sandbox for the Node CLI, so they exist once (here and in
 * rtcall.c/oci.c) whichever front door a call came in by. Node has done what needs it (default image, farms,
 * FUSE mounts, the profile, the name claim and state.json, a user name looked up) and hands over:
 *   boot --home H NAME                         config.json, the runtime's create + start; prints "PID STARTTIME" and a
 *                                              line of JSON: what boot decided (limits, cgroups, userns)
 *   exec --home H [--uid U] [--gid G] [--user-home D] [--workdir W] [--tty] [--env K=V]... NAME -- CMD...
 *                                              the runtime's exec, waited for (its exit code is ours)
 *   kill --home H NAME SIGNAL TIMEOUT_MS       exit 0 exited, 2 timeout, 3 not running
 *   delete --home H NAME                       the runtime's delete --force
 *   pause|resume --home H NAME                 the runtime's pause / resume: exit 0 done, 4 it already was so
 *   purge --home H PATH                        remove tenants/PATH (as the native rm does; rootless: in a user namespace)
 *   volume-quota --home H NAME BYTES           a project quota of BYTES on volumes/NAME/data (velo volume create --size)
 * Errors: the message on stderr, exit 1. Never a fallback: Node called us. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "disk.h"
#include "rtcall.h"
#include "sandbox.h"

static int fail(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  return 1;
}

int front_sandbox_internal(const struct front_ctx *ctx, int argc, char **argv) {
  if (argc < 1) return fail("usage: velo __sandbox boot|exec|kill|delete --home H NAME ...%s%s", "", "");
  const char *verb = argv[0], *home = NULL, *workdir = NULL, *user_home = NULL;
  long uid = 0, gid = 0;
  bool tty = false, transient = false;
  const char **env = calloc((size_t)argc, sizeof *env);
  int n_env = 0, i = 1;
  const char *pos[4] = {0};
  int np = 0;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--home") && v) home = v, i++;
    else if (!strcmp(a, "--uid") && v) uid = strtol(v, NULL, 10), i++;
    else if (!strcmp(a, "--gid") && v) gid = strtol(v, NULL, 10), i++;
    else if (!strcmp(a, "--user-home") && v) user_home = v, i++;
    else if (!strcmp(a, "--workdir") && v) workdir = v, i++;
    else if (!strcmp(a, "--env") && v) env[n_env++] = v, i++;
    else if (!strcmp(a, "--tty")) tty = true;
    else if (!strcmp(a, "--transient")) transient = true;
    else if (a[0] != '-' && np < 4) pos[np++] = a;
    else return fail("velo __sandbox %s: unexpected %s", verb, a);
  }
  if (!home || np < 1) return fail("velo __sandbox %s: needs --home and a sandbox name%s", verb, "");
  const char *name = pos[0];
  char err[2048];
  if (!strcmp(verb, "delete")) return sb_rt_delete(ctx, home, name, err, sizeof err) < 0 ? fail("%s%s", err, "") : 0;
  if (!strcmp(verb, "pause") || !strcmp(verb, "resume")) {
    int r = sb_rt_freeze(home, name, !strcmp(verb, "pause"), err, sizeof err);
    return r < 0 ? fail("%s%s", err, "") : r == 1 ? 4 : 0;
  }
  if (!strcmp(verb, "volume-quota")) {
    /* NAME was validated by Node (a volume name: no '/', no '..'); the quota as a tenant's --disk (disk.c) */
    if (np != 2 || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, ".")) return fail("velo __sandbox volume-quota: NAME BYTES%s%s", "", "");
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/volumes/%s", home, name);
    static const char *const DATA[] = {"data"};
    return disk_quota_set(dir, DATA, 1, strtod(pos[1], NULL), "--size", err, sizeof err) < 0 ? fail("%s%s", err, "") : 0;
  }
  if (!strcmp(verb, "purge")) {
    /* tenants/PATH (a moved-aside ".rm-..." dir, a stopped tenant's NAME/work): removed as sb_rm_tree does, for Node */
    char tdir[4200];
    snprintf(tdir, sizeof tdir, "%s/tenants", home);
    int dfd = open(tdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    bool bad = name[0] == '/' || !strcmp(name, ".") || !strncmp(name, "../", 3) || strstr(name, "/../") || !strcmp(name, "..") ||
               (strlen(name) >= 3 && !strcmp(name + strlen(name) - 3, "/.."));
    if (dfd < 0 || bad) return fail("cannot remove %s/%s", tdir, name);
    int r = sb_rm_tree(dfd, name);
    int en = errno;
    close(dfd);
    return r < 0 ? fail("cannot remove %s: %s", name, strerror(en)) : 0;
  }
  struct tstate s;
  int r = state_read(home, name, &s);
  if (r != STATE_OK) return fail("cannot read the state of sandbox %s%s", name, r == STATE_NOENT ? ": no such sandbox" : "");
  if (!strcmp(verb, "boot")) {
    if (sb_boot(ctx, home, &s, transient, err, sizeof err) < 0) return fail("%s%s", err, "");
    printf("%ld %s\n", s.pid, s.pid_start);
    /* what boot decided for a rootless tenant (the limits that apply, its cgroups, its user namespace), for Node's
     * state: {"limits": {...}, "cgroups": [...], "userns": bool} */
    json_object *o = json_object_new_object(), *lim = json_object_new_object(), *cg = json_object_new_array();
    for (int k = 0; k < s.n_limits; k++) json_object_object_add(lim, s.limits[k].key, json_object_new_double(s.limits[k].value));
    for (size_t k = 0; k < s.cgroups.n; k++) json_object_array_add(cg, json_object_new_string(s.cgroups.v[k]));
    json_object_object_add(o, "limits", lim);
    json_object_object_add(o, "cgroups", cg);
    json_object_object_add(o, "userns", json_object_new_boolean(s.userns));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return 0;
  }
  if (!strcmp(verb, "kill")) {
    if (np != 3) return fail("velo __sandbox kill: NAME SIGNAL TIMEOUT_MS%s%s", "", "");
    int k = sb_signal(ctx, home, &s, atoi(pos[1]), atoi(pos[2]), err, sizeof err);
    return k < 0 ? fail("%s%s", err, "") : k;
  }
  if (!strcmp(verb, "exec")) {
    if (i >= argc) return fail("velo __sandbox exec: no command%s%s", "", "");
    struct oci_exec x = {.workdir = workdir, .uid = (uid_t)uid, .gid = (gid_t)gid, .user_home = user_home, .env = env, .n_env = n_env,
                         .argv = (const char *const *)argv + i, .argc = argc - i, .tty = tty};
    return sb_exec_wait(home, &s, &x);
  }
  return fail("velo __sandbox: unknown verb %s%s", verb, "");
}
