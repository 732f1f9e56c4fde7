/* The host ids of a sandbox's user namespace (see userns.c). */
#ifndef VELO_FRONT_USERNS_H
#define VELO_FRONT_USERNS_H
#include <stddef.h>

#define USERNS_SIZE 65536UL

/* Sandbox NAME's range: host uid and gid that its root maps to (USERNS_SIZE ids each). Allocated on first use
 * and kept for the tenant's life. 0, or -1 with err saying why. */
int userns_range(const char *home, const char *name, unsigned long *uid, unsigned long *gid, char *err, size_t errlen);

#endif
