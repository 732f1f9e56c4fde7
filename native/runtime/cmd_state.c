/* velo-runtime state ID: the spec's state JSON on stdout. */
#include "rt.h"

int cmd_state(int argc, char **argv) {
  const struct flag flags[] = {{NULL, 0, false, NULL, NULL}};
  char *pos[1];
  if (parse_flags(argc, argv, flags, pos, 1, "state", NULL) != 1) return rt_err("state: needs exactly one container id");
  struct velo_err e = {0};
  struct container c;
  if (container_load(pos[0], &c, &e) != 0) {
    container_free(&c);
    return rt_verr(&e);
  }
  char *s = container_state_json(&c, NULL);
  puts(s);
  free(s);
  container_free(&c);
  return 0;
}
