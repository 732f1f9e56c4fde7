#ifndef VELO_CGROUP_H
#define VELO_CGROUP_H
#include "plan.h"
/* Open DIR/tasks (v1) or DIR/cgroup.procs (v2) for each of the plan's cgroups (v1: one per controller; v2: one dir).
 * The caller must be single-threaded when it joins: see cgroup.c. */
int cgroup_open_all(const struct plan *p, int *fds, struct velo_err *e);
/* Move the calling process into every opened cgroup. */
int cgroup_join_fds(const struct plan *p, const int *fds, struct velo_err *e);
#endif
