#ifndef VELO_SECCOMP_H
#define VELO_SECCOMP_H
#include "util.h"
/* Load velo's default policy (docs/sandbox.md): allow by default, EPERM for the syscalls listed there,
 * ENOSYS for clone3 and io_uring, kill on a foreign architecture. Requires no_new_privs. */
int seccomp_default(struct velo_err *e);
#endif
