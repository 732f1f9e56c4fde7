/* velo-runtime run [--detach] ... ID: create + start (+ wait + delete), as `runc run`: the container's
 * process is this command's child, so its exit status is ours (128+N for a signal) and signals we get are
 * passed on to it. */
#include <string.h>
#include <sys/wait.h>

#include "rt.h"
#include "../common/ttyrelay.h"

int cmd_run(int argc, char **argv) {
  struct create_opts o = {0};
  bool detach = false;
  if (parse_create_flags(argc, argv, &o, &detach, "run") < 0) return 1;
  sigset_t set, old;
  proc_forward_set(&set);
  /* blocked before the child exists: a short-lived container's SIGCHLD must not come and go unseen */
  sigprocmask(SIG_BLOCK, &set, &old);
  pid_t child = -1;
  int relay = -1;
  if (!detach) o.relay_sock = &relay;
  struct velo_err e = {0};
  if (container_create(&o, &child, &e) < 0) return rt_verr(&e);
  struct container c;
  if (container_load(o.id, &c, &e) != 0 || container_start(&c, &e) < 0) {
    rt_verr(&e);
    if (c.dir) container_delete(&c, true, &e);
    container_free(&c);
    return 1;
  }
  if (detach) {
    container_free(&c);
    return 0;
  }
  int status;
  if (relay >= 0) {
    int master = console_recv(relay, &e);
    close(relay);
    if (master < 0) {
      rt_verr(&e);
      kill(child, SIGKILL);
    }
    status = master < 0 ? proc_wait_forwarding(child, &set) : tty_relay(master, child, PROC_FORWARD, PROC_N_FORWARD);
  } else {
    status = proc_wait_forwarding(child, &set);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (container_delete(&c, true, &e) < 0) rt_verr(&e);
  container_free(&c);
  return status;
}
