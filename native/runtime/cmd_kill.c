/* velo-runtime kill [--all] ID [SIGNAL]: SIGNAL by name (TERM, SIGTERM) or number; default SIGTERM. */
#include <string.h>

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
  struct container c;
  int r = container_load(pos[0], &c, &e);
  if (r == 0) {
    const char *status = container_status(&c);
    if (!strcmp(status, "stopped") || !strcmp(status, "creating")) r = velo_fail(&e, 0, "cannot kill container %s: it is %s, not running", c.id, status);
    /* with SIGKILL kill_all waits for the cgroup to empty: give it time, or `kill --all ID KILL` fails although every process got the signal */
    else if (all && c.has_cg) r = oci_cgroup_kill_all(&c.cg, sig, 5000, &e);
    else r = container_signal(&c, sig, &e);
  }
  container_free(&c);
  return r ? rt_verr(&e) : 0;
}
