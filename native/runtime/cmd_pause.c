/* velo-runtime pause ID / resume ID: freeze or thaw every process of the container (its cgroup). */
#include <string.h>

#include "rt.h"

static int freeze(int argc, char **argv, bool frozen, const char *verb) {
  const struct flag flags[] = {{NULL, 0, false, NULL, NULL}};
  char *pos[1];
  if (parse_flags(argc, argv, flags, pos, 1, verb, NULL) != 1) return rt_err("%s: needs exactly one container id", verb);
  struct velo_err e = {0};
  int r = container_freeze(pos[0], frozen, &e);
  if (r == 1) r = velo_fail(&e, 0, "cannot %s container %s: it is %s, not %s", verb, pos[0], frozen ? "paused" : "running", frozen ? "running" : "paused");
  return r ? rt_verr(&e) : 0;
}

int cmd_pause(int argc, char **argv) { return freeze(argc, argv, true, "pause"); }
int cmd_resume(int argc, char **argv) { return freeze(argc, argv, false, "resume"); }
