/* A sandbox's lifecycle through velo-runtime (see rtcall.c). */
#ifndef VELO_FRONT_RTCALL_H
#define VELO_FRONT_RTCALL_H
#include "front.h"
#include "oci.h"
#include "state.h"

/* config.json into the tenant dir, `velo-runtime create` + `start`; fills s->pid / pid_start. -1: err says why. */
int sb_boot(const struct front_ctx *ctx, const char *home, struct tstate *s, char *err, size_t errlen);
/* Signal the sandbox's init (velo-runtime kill) and wait up to timeout_ms for it to exit: 0 exited (or no wait),
 * 2 timeout, 3 not running; -1: err says why. */
int sb_signal(const struct front_ctx *ctx, const char *home, const struct tstate *s, int sig, int timeout_ms, char *err, size_t errlen);
/* velo-runtime delete --force: every process, the cgroups, the runtime's state (a missing container is fine). */
int sb_rt_delete(const struct front_ctx *ctx, const char *home, const char *name, char *err, size_t errlen);
/* An exec's process JSON in a memfd (or -1), and the argv that runs it: velo-runtime exec --process /proc/self/fd/N. */
int sb_exec_fd(const struct tstate *s, const struct oci_exec *x);
char **sb_exec_argv(const struct front_ctx *ctx, const char *home, const char *name, int process_fd);

#endif
