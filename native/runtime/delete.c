/* Deleting a container: a stopped (or created) container's cgroup, poststop hooks and state dir; with force a
 * running one is killed first. A state dir whose create was interrupted (no process recorded, or no state file
 * at all) is cleaned the same way. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "rt.h"

int container_delete(struct container *c, bool force, struct velo_err *e) {
  const char *status = container_status(c);
  bool running = !strcmp(status, "running") || !strcmp(status, "paused");
  if (running && !force) return velo_fail(e, 0, "cannot delete container %s: it is %s (stop it first, or use --force)", c->id, status);
  if (c->has_cg && !strcmp(status, "paused")) oci_cgroup_freeze(&c->cg, false, e);
  if (strcmp(status, "stopped")) {
    /* SIGKILL to the init of a pid namespace ends every process in it: wait for that (a pidfd wakes us at once) */
    if (c->pid > 0 && container_signal(c, SIGKILL, e) == 0) container_wait_exit(c, 2000);
    /* everything else in the cgroup too (exec'd processes, or a set-up whose create was killed) */
    if (c->has_cg && oci_cgroup_kill_all(&c->cg, SIGKILL, 5000, e) < 0) return -1;
  } else if (c->has_cg) {
    /* the init is gone; with a shared pid namespace its children may not be */
    oci_cgroup_kill_all(&c->cg, SIGKILL, 5000, e);
  }
  if (c->has_cg && oci_cgroup_destroy(&c->cg, e) < 0) return -1;
  char *st = container_state_json(c, "stopped");
  struct velo_err he = {0};
  hooks_run(c->config, "poststop", st, &he);
  free(st);
  if (rm_tree_at(AT_FDCWD, c->dir) < 0) return VELO_FAIL_ERRNO(e, "remove %s", c->dir);
  return 0;
}

int container_remove(const char *id, bool force, struct velo_err *e) {
  struct container c;
  int r = container_load(id, &c, e);
  if (r == 1) {
    container_free(&c);
    return force ? 0 : -1;
  }
  if (r < 0) {
    /* damaged or half-made state (create killed before state.json was whole): force removes the dir */
    if (!force || !c.dir) {
      container_free(&c);
      return -1;
    }
    if (c.state && cfg_get(c.state, "cgroup") && !c.has_cg) {
      struct velo_err e2 = {0};
      if (oci_cgroup_from_json(cfg_get(c.state, "cgroup"), &c.cg, &e2) == 0) c.has_cg = true;
    }
    if (c.has_cg) {
      oci_cgroup_kill_all(&c.cg, SIGKILL, 5000, e);
      oci_cgroup_destroy(&c.cg, e);
    }
    r = rm_tree_at(AT_FDCWD, c.dir) < 0 ? VELO_FAIL_ERRNO(e, "remove %s", c.dir) : 0;
    container_free(&c);
    return r;
  }
  r = container_delete(&c, force, e);
  container_free(&c);
  return r;
}
