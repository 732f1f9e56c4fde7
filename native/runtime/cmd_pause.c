/* velo-runtime pause ID / resume ID: freeze or thaw every process of the container (its cgroup). */
#include <string.h>

#include "rt.h"

static int freeze(int argc, char **argv, bool frozen, const char *verb) {
  const struct flag flags[] = {{NULL, 0, false, NULL, NULL}};
  char *pos[1];
  if (parse_flags(argc, argv, flags, pos, 1, verb, NULL) != 1) return rt_err("%s: needs exactly one container id", verb);
  struct velo_err e = {0};
  struct container c;
  int r = container_load(pos[0], &c, &e);
  if (r == 0) {
    const char *status = container_status(&c);
    if (frozen && strcmp(status, "running")) r = velo_fail(&e, 0, "cannot pause container %s: it is %s, not running", c.id, status);
    else if (!frozen && strcmp(status, "paused")) r = velo_fail(&e, 0, "cannot resume container %s: it is %s, not paused", c.id, status);
    else if (!c.has_cg) r = velo_fail(&e, 0, "container %s has no cgroup recorded", c.id);
    else r = oci_cgroup_freeze(&c.cg, frozen, &e);
  }
  container_free(&c);
  return r ? rt_verr(&e) : 0;
}

int cmd_pause(int argc, char **argv) { return freeze(argc, argv, true, "pause"); }
int cmd_resume(int argc, char **argv) { return freeze(argc, argv, false, "resume"); }
