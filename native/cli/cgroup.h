/* Where a tenant's cgroups are (velo-runtime makes and removes them: cgroupsPath /velo/NAME.STORE, oci.h), as the
 * state file names them: one per controller (memory, pids, cpu) on a v1/hybrid host, one dir on a pure v2 host. */
#ifndef VELO_FRONT_CGROUP_H
#define VELO_FRONT_CGROUP_H
#include <stdbool.h>
#include "state.h"

/* 0 and the tenant's dirs (v1: memory, pids, cpu; v2: one); < 0 when Node must serve (a v1 controller missing:
 * Node renders that error). */
int cgroup_dirs(const char *home, const char *name, struct strlist *out);

#endif
