/* A helper that works under its caller's lock must not outlive the caller: the lock dies with it, and whatever runs
 * on would write beside the next holder. velo_bind_to_caller() asks for SIGKILL at the caller's death and then checks
 * that the caller is still its parent: a caller that died before the request (between its fork and this call) has
 * left the helper re-parented, which only the caller's pid, passed in VELO_CALLER_PID, tells (getppid() alone would
 * compare the new parent with itself). Without the variable, the parent seen at start is taken as the caller.
 * 0: bound; -1: the caller is gone (exit before any change). Node passes the variable: src/lib/native.ts callerEnv. */
#ifndef VELO_CALLER_H
#define VELO_CALLER_H
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

static inline int velo_bind_to_caller(void) {
  const char *caller = getenv("VELO_CALLER_PID");
  pid_t parent = caller ? (pid_t)atol(caller) : getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) return -1;
  return getppid() == parent ? 0 : -1;
}

#endif
