#include "cgroup.h"

#include <fcntl.h>
#include <stdio.h>

int cgroup_open_all(const struct plan *p, int *fds, struct velo_err *e) {
  for (size_t i = 0; i < p->n_cgroups; i++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/cgroup.procs", p->cgroups[i]);
    fds[i] = open(path, O_WRONLY | O_CLOEXEC);
    if (fds[i] < 0) return VELO_FAIL_ERRNO(e, "open cgroup %s", path);
  }
  return 0;
}

int cgroup_join_fds(const struct plan *p, const int *fds, struct velo_err *e) {
  for (size_t i = 0; i < p->n_cgroups; i++)
    if (write_all(fds[i], "0", 1) < 0) return VELO_FAIL_ERRNO(e, "join cgroup %s", p->cgroups[i]);
  return 0;
}
