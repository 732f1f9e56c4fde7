/* A tenant on a velo network, through the CNI plugins (cni.c). */
#ifndef VELO_FRONT_CNI_H
#define VELO_FRONT_CNI_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "state.h"

/* state.json "network" names a velo network (not "loopback" or "none") */
bool cni_wanted(const struct tstate *s);
/* networks/NET.hosts in out, made (localhost only) when missing: the tenant's /etc/hosts. 0, or -1 with errno. */
int cni_hosts_file(const char *home, const struct tstate *s, char *out, size_t outlen);
/* ADD for the created (not yet started) container whose init is `init`. 0, or -1 with err ("CODE: message\n
 * suggestion: ..." for what the user can fix: NOT_FOUND, BUSY, UNSUPPORTED). */
int cni_attach(const char *home, const struct tstate *s, pid_t init, char *err, size_t errlen);
/* DEL of what the last ADD made, if anything is attached; the address stays on record. Never fails. */
void cni_detach(const char *home, const char *name);

#endif
