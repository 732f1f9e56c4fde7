#include "cgroup.h"

#include <fcntl.h>
#include <stdio.h>

/* On a v1 hierarchy we join through `tasks`, not `cgroup.procs`. Writing "0" to cgroup.procs moves the whole
 * thread group and takes the global cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period
 * (10-20 ms here, more under load: it was most of a create's own time and all of its p99 spread). Writing "0"
 * to `tasks` moves only the calling thread, which the kernel does without that lock (cgroup_procs_write_start:
 * the current task cannot exit or exec under us). Every process that joins here is single-threaded (the
 * helper before clone, the exec child right after fork), so moving the thread moves the process, and its
 * children are born in the cgroup. v2 has no `tasks` file: there cgroup.procs is used as before. */
int cgroup_open_all(const struct plan *p, int *fds, struct velo_err *e) {
  for (size_t i = 0; i < p->n_cgroups; i++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tasks", p->cgroups[i]);
    fds[i] = open(path, O_WRONLY | O_CLOEXEC);
    if (fds[i] < 0 && errno == ENOENT) {
      snprintf(path, sizeof path, "%s/cgroup.procs", p->cgroups[i]);
      fds[i] = open(path, O_WRONLY | O_CLOEXEC);
    }
    if (fds[i] < 0) return VELO_FAIL_ERRNO(e, "open cgroup %s", path);
  }
  return 0;
}

int cgroup_join_fds(const struct plan *p, const int *fds, struct velo_err *e) {
  for (size_t i = 0; i < p->n_cgroups; i++)
    if (write_all(fds[i], "0", 1) < 0) return VELO_FAIL_ERRNO(e, "join cgroup %s", p->cgroups[i]);
  return 0;
}
