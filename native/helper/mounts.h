#ifndef VELO_MOUNTS_H
#define VELO_MOUNTS_H
#include "plan.h"
/* In a fresh mount namespace: overlay root at p->root, then /proc, read-only /sys, a minimal /dev, masks and
 * read-only spots in /proc, and the user's binds, all resolved inside the root (symlinks cannot lead out). */
int setup_mounts(const struct plan *p, struct velo_err *e);
#endif
