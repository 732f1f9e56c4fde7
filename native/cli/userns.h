/* The host ids of a sandbox's user namespace (see userns.c). */
#ifndef VELO_FRONT_USERNS_H
#define VELO_FRONT_USERNS_H
#include <stddef.h>

#define USERNS_SIZE 65536UL

/* A user namespace's map, as linux.uidMappings/gidMappings: n ranges (container id, host id, size). */
struct idmap {
  unsigned n;
  unsigned long c[2], h[2], s[2];
};
struct tenant_ids {
  struct idmap uid, gid;
};

/* Not root (rootless velo): every tenant of the user maps its root to the user's own ids and its ids 1..N to the
 * user's first /etc/subuid and /etc/subgid range (N = its size, at most 65,535), as Podman does. The same map for
 * all of the user's tenants: the user's ids are the only ones it has. 0, or -1 with err and sug saying why. */
int userns_rootless(struct tenant_ids *ids, char *err, size_t errlen, char *sug, size_t suglen);

/* Sandbox NAME's range: host uid and gid that its root maps to (USERNS_SIZE ids each). Allocated on first use
 * and kept for the tenant's life. 0, or -1 with err saying why. */
int userns_range(const char *home, const char *name, unsigned long *uid, unsigned long *gid, char *err, size_t errlen);

#endif
