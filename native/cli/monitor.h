/* The workload monitor (monitor.c): a tenant's main command, its logs, its exit and its restart policy. */
#ifndef VELO_FRONT_MONITOR_H
#define VELO_FRONT_MONITOR_H
#include <stdbool.h>
#include <sys/types.h>

#include "front.h"
#include "state.h"

/* The log options of a main command without --log-opt: src/sandbox/workload.ts LOG_DEFAULTS, which decides them
 * (the native create writes them into state.json as Node would; test/cli/front.test.ts checks the two agree). */
#define WORKLOAD_LOG_MAX_SIZE 10485760LL
#define WORKLOAD_LOG_MAX_FILES 3

enum restart_policy { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };

/* state.json's "main" (the plan Node resolved at create: argv, uid, gid, home, workdir, env), "restart" and "logs" */
struct workload {
  char **argv, **env;
  int argc, n_env;
  uid_t uid;
  gid_t gid;
  char *home, *workdir; /* NULL: absent */
  enum restart_policy policy;
  int max_restarts; /* on-failure:N; 0 = no limit */
  long long max_size;
  int max_files;
  bool auto_remove; /* "autoRemove" (--rm with -d): the monitor removes the tenant when the command ends by itself */
};

/* 1: the tenant has a main command (w filled; workload_free it, also usable as a cleanup attribute), 0: it has none, -1: its state is unreadable or
 * "main" is malformed */
int workload_read(const char *home, const char *name, struct workload *w);
void workload_free(struct workload *w);

/* Fork and exec the monitor of the booted tenant s and return once its main command runs (0), or -1 with err. */
int sb_monitor_start(const struct front_ctx *ctx, const char *home, struct tstate *s, char *err, size_t errlen);

/* `velo __monitor HOME NAME`: the monitor's own process, exec'd by sb_monitor_start with its fds in place. */
int monitor_main(const struct front_ctx *ctx, int argc, char **argv);

/* Wait up to timeout_ms for the tenant's monitor (if any, and not ourselves) to leave. 0, or -1 on timeout. */
int sb_monitor_wait(const char *home, const char *name, int timeout_ms);

#endif
