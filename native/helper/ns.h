#ifndef VELO_NS_H
#define VELO_NS_H
#include <sys/types.h>
#include "util.h"
#define SANDBOX_NS_FLAGS (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP)
/* fork() into new namespaces: the child is pid 1 of its pid namespace. */
pid_t clone_into_new_ns(int flags, struct velo_err *e);
/* Open the ns files under /proc/PID of a running sandbox (checking it is still the same process), then setns into all. */
struct ns_fds {
  int fd[6];
};
int ns_open(pid_t pid, unsigned long long start, struct ns_fds *n, struct velo_err *e);
int ns_enter(struct ns_fds *n, struct velo_err *e);
void ns_close(struct ns_fds *n);
#endif
