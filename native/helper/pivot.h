#ifndef VELO_PIVOT_H
#define VELO_PIVOT_H
#include "util.h"
/* Make ROOT the new '/', detach the old root entirely (nothing of the host stays reachable). */
int pivot_into(const char *root, struct velo_err *e);
#endif
