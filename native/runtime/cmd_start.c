/* velo-runtime start ID: let a created container's process run its program. */
#include "rt.h"

int cmd_start(int argc, char **argv) {
  const struct flag flags[] = {{NULL, 0, false, NULL, NULL}};
  char *pos[1];
  if (parse_flags(argc, argv, flags, pos, 1, "start", NULL) != 1) return rt_err("start: needs exactly one container id");
  struct velo_err e = {0};
  struct container c;
  int r = container_load(pos[0], &c, &e);
  if (r == 0) r = container_start(&c, &e);
  container_free(&c);
  return r ? rt_verr(&e) : 0;
}
