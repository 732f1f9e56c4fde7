/* A sandbox's lifecycle through velo-runtime (see rtcall.c). */
#ifndef VELO_FRONT_RTCALL_H
#define VELO_FRONT_RTCALL_H
#include "front.h"
#include "oci.h"
#include "state.h"

/* The suggestion for a permission error of a sandbox step (src/sandbox/container.ts says the same) */
#define SB_PERM_SUGGESTION "only the owner of a store can drive its sandboxes: use a store of your own (--home DIR or VELO_HOME); without root, see docs/sandbox.md (Rootless velo)"

/* config.json into the tenant dir, the runtime's create + start; fills s->pid / pid_start. -1: err says why.
 * What the host cannot do (no project quotas for --disk, no block device for I/O rates) is said as
 * "UNSUPPORTED: message\nsuggestion: text", and a permission problem found before anything starts (a store the
 * tenant's root cannot reach) as "PERMISSION_DENIED: ...": sb_err_split tells them apart here,
 * src/sandbox/container.ts in Node. */
/* transient: a boot for `velo sandbox cp` of a stopped sandbox — no main command, no network plugins, no events;
 * the caller kills it and deletes the container when the copy is done. */
int sb_boot(const struct front_ctx *ctx, const char *home, struct tstate *s, bool transient, char *err, size_t errlen);
/* "UNSUPPORTED" or "PERMISSION_DENIED" (err cut to the message, *sug to the suggestion) or NULL (err untouched) */
const char *sb_err_split(char *err, const char **sug);
/* Signal the sandbox's init (as velo-runtime kill) and wait up to timeout_ms for it to exit: 0 exited (or no wait),
 * 2 timeout, 3 not running; -1: err says why. */
int sb_signal(const struct front_ctx *ctx, const char *home, const struct tstate *s, int sig, int timeout_ms, char *err, size_t errlen);
/* as velo-runtime delete --force: every process, the cgroups, the runtime's state (a missing container is fine). */
/* Remove the tree dfd/name (a tenant dir, moved aside). Not root, in a user namespace with the user's map as its
 * root: what the tenant made as its other users is owned by ids of the user's range, and overlay's work dir is
 * mode 000. < 0 with errno. */
int sb_rm_tree(int dfd, const char *name);

/* Point the runtime library at HOME/runtime (its containers' records), as `velo-runtime --root` would. */
void sb_rt_root(const char *home);
int sb_rt_delete(const struct front_ctx *ctx, const char *home, const char *name, char *err, size_t errlen);
/* velo-runtime pause / resume, and tenants/NAME/paused kept in step: 0 done, 1 it already was so; -1 err says why. */
int sb_rt_freeze(const char *home, const char *name, bool frozen, char *err, size_t errlen);
/* Run x in the sandbox (velo-runtime exec, in this process) and wait for it, passing signals on (a terminal is
 * relayed); its exit code (128+N for signal N). A process that never ran: the reason on stderr, 127/126/1. */
int sb_exec_wait(const char *home, const struct tstate *s, const struct oci_exec *x);

#endif
