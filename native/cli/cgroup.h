/* A tenant's cgroups, as src/sandbox/cgroup.ts makes and removes them. Only the v1/hybrid layout is served
 * here (this host's); on a pure v2 host cgroup_dirs() says so and the fast path leaves the call to Node. */
#ifndef VELO_FRONT_CGROUP_H
#define VELO_FRONT_CGROUP_H
#include <stdbool.h>
#include "state.h"

/* 0 and the tenant's dirs (memory, pids, cpu) on a v1 host; < 0 when Node must serve (v2, or a controller
 * missing: Node renders that error). */
int cgroup_dirs(const char *name, struct strlist *out);

/* ensureCgroups: create the dirs and write the limits. < 0: *what names the failed step (for
 * front_sys_error), errno set. */
int cgroup_ensure(const struct strlist *dirs, const struct tlimit *limits, int n_limits, char *what, size_t what_len);

/* removeCgroups: rmdir each, killing what is left while EBUSY, up to 5 s. < 0: errno set, *what filled. */
int cgroup_remove(const struct strlist *dirs, char *what, size_t what_len);

#endif
