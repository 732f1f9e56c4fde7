/* Profiles without re-implementing their schema in C: when Node loads a profile by name it writes the
 * validated result to <home>/cache/profiles/NAME.json together with the source file's dev, ino, size, mtime
 * and ctime (src/profiles/profile.ts writeProfileCache). The fast path uses that compiled form only while the
 * source file's stat still matches; otherwise (first use, an edited profile, a profile given by path) Node
 * serves the call, validates, and refreshes the cache. The copy sits in the store, so it is not trusted beyond
 * that: it must be this user's own file (writable by no one else) and every value one validateProfile could
 * have produced (no forbidden capability, no '..' in a mount, valid env keys, limits in range); else Node. */
#ifndef VELO_FRONT_PROFILE_H
#define VELO_FRONT_PROFILE_H
#include <stdbool.h>
#include "state.h"

struct profile {
  char *name, *network, *hostname /* or NULL */, *seccomp, *user /* or NULL */, *workdir /* or NULL */;
  bool userns;
  struct tlimit limits[TLIMITS_MAX];
  int n_limits;
  struct strlist env; /* K=V in the profile's key order */
  struct tmount *mounts;
  size_t n_mounts;
  struct strlist caps;
};

/* 0 = loaded; < 0 = Node must serve (no cache, stale cache, a ref that is a path or an invalid name). */
int profile_load_cached(const char *pkgroot, const char *home, const char *ref, struct profile *p);

#endif
