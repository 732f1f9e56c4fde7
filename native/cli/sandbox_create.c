/* `velo sandbox create NAME [flags]` without Node (see sb_create in sandbox.c), and `velo sandbox run`. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/vlog.h"
#include "args.h"
#include "rtcall.h"
#include "sandbox.h"
#include "util.h"

/* createFlags (src/commands/sandbox/flags.ts) + the global ones; run adds execFlags, --rm and --name */
enum { F_HOME, F_IMAGE, F_PROFILE, F_ENV, F_MOUNT, F_MEMORY, F_PIDS, F_CPUS, F_HOSTNAME, F_BACKEND, F_USERNS, F_NETWORK, F_PUBLISH, F_JSON, F_TTY, F_INTERACTIVE, F_WORKDIR, F_USER, F_RM, F_NAME, F_DETACH, N_FLAGS };
static const struct flag_def FLAGS[N_FLAGS] = {
    [F_HOME] = {"home", 0, true, false},       [F_IMAGE] = {"image", 0, true, false},       [F_PROFILE] = {"profile", 0, true, false},
    [F_ENV] = {"env", 'e', true, true},        [F_MOUNT] = {"mount", 'v', true, true},      [F_MEMORY] = {"memory", 0, true, false},
    [F_PIDS] = {"pids", 0, true, false},       [F_CPUS] = {"cpus", 0, true, false},         [F_HOSTNAME] = {"hostname", 0, true, false},
    [F_BACKEND] = {"backend", 0, true, false}, [F_USERNS] = {"userns", 0, true, false},
    [F_NETWORK] = {"network", 0, true, false}, [F_PUBLISH] = {"publish", 'p', true, true}, [F_JSON] = {"json", 0, false, false},        [F_TTY] = {"tty", 't', false, false},
    [F_INTERACTIVE] = {"interactive", 'i', false, false},
    [F_WORKDIR] = {"workdir", 'w', true, false}, [F_USER] = {"user", 'u', true, false},     [F_RM] = {"rm", 0, false, false},
    [F_NAME] = {"name", 0, true, false},       [F_DETACH] = {"detach", 'd', false, false},
};
#define N_CREATE_FLAGS (F_JSON + 1) /* create: the flags up to --json */

static void opts_from(const struct parsed_args *a, struct create_opts *o) {
  o->image = args_one(a, F_IMAGE);
  o->profile = args_one(a, F_PROFILE);
  o->memory = args_one(a, F_MEMORY);
  o->pids = args_one(a, F_PIDS);
  o->cpus = args_one(a, F_CPUS);
  o->hostname = args_one(a, F_HOSTNAME);
  o->backend = args_one(a, F_BACKEND);
  o->userns = args_one(a, F_USERNS);
  o->network = args_one(a, F_NETWORK);
  o->publish = a->flags[F_PUBLISH].values;
  o->n_publish = a->flags[F_PUBLISH].count;
  o->env = a->flags[F_ENV].values;
  o->n_env = a->flags[F_ENV].count;
  o->mounts = a->flags[F_MOUNT].values;
  o->n_mounts = a->flags[F_MOUNT].count;
}

int front_sandbox_create(const struct front_ctx *ctx, int argc, char **argv) {
  static struct parsed_args a;
  argv = args_docker_shape(FLAGS, N_CREATE_FLAGS, argc, argv, ARGS_SHAPE_NAME, &argc);
  if (args_parse(FLAGS, N_CREATE_FLAGS, argc, argv, &a) < 0 || a.n_args < 1) return FRONT_FALLBACK;
  char *home = front_home(args_one(&a, F_HOME));
  if (!home) return FRONT_FALLBACK;
  struct create_opts o = {.name = a.args[0]};
  opts_from(&a, &o);
  /* NAME -- CMD: a main command (the words after NAME) */
  o.main_argv = a.args + 1;
  o.main_argc = a.n_args - 1;
  struct create_result r;
  int rc = sb_create(ctx, home, &o, a.json, NULL, NULL, &r);
  if (rc) return rc;
  if (!a.json) {
    vlog("info", "velo", "created sandbox %s (image %s, profile %s, init pid %ld)%s%s", r.st.name, r.st.image, r.profile_name, r.st.pid,
            o.main_argc ? "; its main command runs: velo sandbox logs " : "", o.main_argc ? r.st.name : "");
    return 0;
  }
  struct jw w = {.f = stdout};
  jw_begin_obj(&w);
  jw_key(&w, "name");
  jw_str(&w, r.st.name);
  jw_key(&w, "image");
  jw_str(&w, r.st.image);
  char pid[32];
  snprintf(pid, sizeof pid, "%ld", r.st.pid);
  jw_key(&w, "pid");
  jw_raw(&w, pid);
  jw_key(&w, "profile");
  jw_str(&w, r.profile_name);
  jw_key(&w, "timings");
  jw_begin_obj(&w);
  for (int i = 0; i < r.n_timings; i++) {
    jw_key(&w, r.timings[i].key);
    jw_num(&w, r.timings[i].ms);
  }
  jw_end_obj(&w);
  jw_end_obj(&w);
  fflush(stdout);
  return 0;
}

/* ---- run -------------------------------------------------------------------------------------------- */

struct run_check {
  const struct parsed_args *a;
};

static int run_servable(const struct tstate *s, void *arg) {
  const struct parsed_args *a = ((struct run_check *)arg)->a;
  /* execPlan needs only the state's user, workdir, env, caps and seccomp: known before anything is created */
  struct tstate t = *s;
  t.has_pid = true;
  return sb_exec_servable(&t, args_one(a, F_WORKDIR), args_one(a, F_USER), a->flags[F_ENV].values, a->flags[F_ENV].count, a->args,
                          a->n_args)
             ? 0
             : SB_FALLBACK;
}

int front_sandbox_run(const struct front_ctx *ctx, int argc, char **argv) {
  static struct parsed_args a;
  argv = args_docker_shape(FLAGS, N_FLAGS, argc, argv, ARGS_SHAPE_IMAGE, &argc);
  if (args_parse(FLAGS, N_FLAGS, argc, argv, &a) < 0 || a.json || a.flags[F_TTY].count || a.n_args < 1) return FRONT_FALLBACK;
  /* --json is not a flag of run (Node: "Nonexistent flag"); args_parse only counted it */
  char *home = front_home(args_one(&a, F_HOME));
  if (!home) return FRONT_FALLBACK;
  char gen[20];
  const char *name = args_one(&a, F_NAME);
  if (!name) {
    unsigned char rnd[5];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) return FRONT_FALLBACK;
    snprintf(gen, sizeof gen, "run-%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4]);
    name = gen;
  }
  struct create_opts o = {.name = name, .runs_command = true};
  opts_from(&a, &o);
  struct create_result r;
  if (a.flags[F_DETACH].count) {
    /* -d: the command is the tenant's main command, run by its monitor; the name goes to stdout */
    o.main_argv = a.args;
    o.main_argc = a.n_args;
    o.main_workdir = args_one(&a, F_WORKDIR);
    o.main_user = args_one(&a, F_USER);
    o.auto_remove = a.flags[F_RM].count > 0;
    int rc = sb_create(ctx, home, &o, false, NULL, NULL, &r);
    if (rc) return rc;
    printf("%s\n", name);
    fflush(stdout);
    return 0;
  }
  struct run_check chk = {&a};
  int rc = sb_create(ctx, home, &o, false, run_servable, &chk, &r);
  if (rc) return rc;
  int code;
  if (!state_running(&r.st)) {
    char msg[300], sug[300];
    snprintf(msg, sizeof msg, "sandbox %s is stopped", name);
    snprintf(sug, sizeof sug, "start it with `velo sandbox start %s`", name);
    code = front_error(false, "STATE", msg, sug);
  } else {
    struct oci_exec x = {.workdir = args_one(&a, F_WORKDIR), .env = a.flags[F_ENV].values, .n_env = a.flags[F_ENV].count,
                         .argv = a.args, .argc = a.n_args};
    /* we are the workload's parent (the runtime's exec, in this process): ^C and signals sent to us reach it,
     * its exit code is ours, and we are still here to remove the sandbox after */
    code = sb_exec_wait(home, &r.st, &x);
  }
  if (a.flags[F_RM].count) {
    bool k, h;
    struct timing tm[3];
    int e = sb_remove(ctx, home, name, &r.st, true, false, &k, tm, &h);
    if (e) return e;
  }
  return code;
}
