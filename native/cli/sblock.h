#ifndef VELO_SBLOCK_H
#define VELO_SBLOCK_H
/* The per-sandbox lifecycle lock (sandbox.c), apart from sandbox.h so that the monitor (which includes the runtime's
 * headers) can take it too. */
#include <stdbool.h>

/* tenants/NAME/lock, exclusive: one lifecycle call on a sandbox at a time (a create's boot, start, stop, rm, a copy's
 * boot), the lock src/sandbox/state.ts lockSandbox takes. Re-entrant in this process; -1 with ENOENT when the
 * sandbox is gone (or went while we waited). sb_unlock lets go of what it returned. */
int sb_lock(const char *home, const char *name);
/* sb_lock, or (wait false) -1 with EWOULDBLOCK at once when another call holds it */
int sb_lock_how(const char *home, const char *name, bool wait);
void sb_unlock(int fd);

#endif
