/* The plan the TypeScript side (createPlan/execPlan in src/sandbox/tenant.ts) or the native front-end
 * (native/cli/sandbox.c) computes and passes in $VELO_PLAN: one `key value` per line, values to the end of the
 * line; `env` and `arg` values escape `\` as `\\` and a newline as `\n` (nothing else may hold a newline); a
 * bind is `bind SRC<TAB>DST<TAB>ro|rw`. Unknown keys are an error. */
#ifndef VELO_PLAN_H
#define VELO_PLAN_H
#include <stdint.h>
#include <sys/types.h>
#include "util.h"

#define PLAN_MAX_LIST 4096

struct bind {
  char *src, *dst;
  int ro;
};

struct plan {
  /* create */
  char *name, *hostname, *root, *upper, *work, *sync_fd;
  char **lowers; size_t n_lowers;
  struct bind *binds; size_t n_binds;
  /* exec */
  pid_t pid;
  unsigned long long pid_start;
  char *cwd;
  uid_t uid; gid_t gid;
  int has_user;
  char **env; size_t n_env;
  char **argv; size_t n_argv;
  /* both */
  char **cgroups; size_t n_cgroups;  /* cgroup dirs to join (v1: one per controller; v2: one) */
  uint64_t caps;                     /* capability mask kept (bounding, permitted, effective) */
  int has_caps;
  int seccomp;                       /* 1 = default policy, 0 = unconfined (only from an explicit profile) */
  int has_seccomp;
  int tty;
  int net_none;                      /* net none: own netns with lo left down */
};

int plan_parse(char *text, struct plan *p, struct velo_err *e);

#endif
