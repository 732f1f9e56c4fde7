#include "ns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

pid_t clone_into_new_ns(int flags, struct velo_err *e) {
  pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, NULL);
  if (pid < 0) return VELO_FAIL_ERRNO(e, "clone into new namespaces (flags 0x%x)", flags);
  return pid;
}


/* mnt last: after it, /proc/PID paths would resolve inside the sandbox. */
static const char *const NS_NAMES[6] = {"cgroup", "ipc", "uts", "net", "pid", "mnt"};

int ns_open(pid_t pid, unsigned long long start, struct ns_fds *n, struct velo_err *e) {
  for (int i = 0; i < 6; i++) n->fd[i] = -1;
  /* A pidfd pins the process: if its start time still matches after we hold it, every ns file we open
   * through /proc/PID belongs to the sandbox's init and not to a process that reused the pid. */
  cleanup_fd int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return velo_fail(e, errno == ESRCH ? 0 : errno, "sandbox init (pid %d) is not running", (int)pid);
  for (int i = 0; i < 6; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, NS_NAMES[i]);
    n->fd[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (n->fd[i] < 0) return VELO_FAIL_ERRNO(e, "open %s", path);
  }
  unsigned long long st;
  char state;
  if (proc_starttime(pid, &st, &state) < 0 || st != start || state == 'Z' || state == 'X')
    return velo_fail(e, 0, "sandbox init (pid %d) is not running", (int)pid);
  return 0;
}

int ns_enter(struct ns_fds *n, struct velo_err *e) {
  for (int i = 0; i < 6; i++)
    if (setns(n->fd[i], 0) < 0) return VELO_FAIL_ERRNO(e, "setns %s", NS_NAMES[i]);
  return 0;
}

void ns_close(struct ns_fds *n) {
  for (int i = 0; i < 6; i++)
    if (n->fd[i] >= 0) close(n->fd[i]), n->fd[i] = -1;
}
