/* Where a tenant's cgroups are (velo-runtime makes and removes them: cgroupsPath /velo/NAME), as
 * src/sandbox/cgroup.ts names them in the state file. Only the v1/hybrid layout is served here (this host's); on a
 * pure v2 host cgroup_dirs() says so and the fast path leaves the call to Node. */
#ifndef VELO_FRONT_CGROUP_H
#define VELO_FRONT_CGROUP_H
#include <stdbool.h>
#include "state.h"

/* 0 and the tenant's dirs (memory, pids, cpu) on a v1 host; < 0 when Node must serve (v2, or a controller
 * missing: Node renders that error). */
int cgroup_dirs(const char *name, struct strlist *out);

#endif
