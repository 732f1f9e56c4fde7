#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci.h"
#include "util.h"

static const char *const V1[] = {"memory", "pids", "cpu"};

static const char *cg_root(void) {
  const char *r = getenv("VELO_CGROUP_ROOT");
  return r && *r ? r : "/sys/fs/cgroup";
}

int cgroup_dirs(const char *home, const char *name, struct strlist *out) {
  memset(out, 0, sizeof *out);
  char p[4200], rel[300];
  /* path.join normalises: a root given with a trailing slash still yields single slashes */
  const char *root = cg_root();
  size_t rl = strlen(root);
  while (rl > 1 && root[rl - 1] == '/') rl--;
  oci_sandbox_cgroups_path(home, name, false, rel, sizeof rel);
  snprintf(p, sizeof p, "%.*s/cgroup.controllers", (int)rl, root);
  if (access(p, F_OK) == 0) { /* pure v2: one dir */
    snprintf(p, sizeof p, "%.*s%s", (int)rl, root, rel);
    return strlist_push(out, p) < 0 ? -1 : 0;
  }
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%.*s/%s/cgroup.procs", (int)rl, root, V1[i]);
    if (access(p, F_OK) < 0) return -1; /* Node renders UNSUPPORTED */
  }
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%.*s/%s%s", (int)rl, root, V1[i], rel);
    if (strlist_push(out, p) < 0) return -1;
  }
  return 0;
}
