/* velo-runtime kill [--all] ID [SIGNAL]: SIGNAL by name (TERM, SIGTERM) or number; default SIGTERM. */
#include "rt.h"

int cmd_kill(int argc, char **argv) {
  bool all = false;
  const struct flag flags[] = {{"all", 'a', false, NULL, &all}, {NULL, 0, false, NULL, NULL}};
  char *pos[2];
  int n = parse_flags(argc, argv, flags, pos, 2, "kill", NULL);
  if (n < 1) return n < 0 ? 1 : rt_err("kill: needs a container id");
  int sig = SIGTERM;
  if (n == 2 && parse_signal(pos[1], &sig) < 0) return rt_err("kill: unknown signal %s", pos[1]);
  struct velo_err e = {0};
  return container_kill(pos[0], sig, all, &e) < 0 ? rt_verr(&e) : 0;
}
