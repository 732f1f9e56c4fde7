/* velo-runtime delete [--force] ID (delete.c). */
#include "rt.h"

int cmd_delete(int argc, char **argv) {
  bool force = false;
  const struct flag flags[] = {{"force", 'f', false, NULL, &force}, {NULL, 0, false, NULL, NULL}};
  char *pos[1];
  if (parse_flags(argc, argv, flags, pos, 1, "delete", NULL) != 1) return rt_err("delete: needs exactly one container id");
  struct velo_err e = {0};
  return container_remove(pos[0], force, &e) < 0 ? rt_verr(&e) : 0;
}
