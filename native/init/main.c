/* velo-init: pid 1 of every velo sandbox. velo-runtime starts it as the container's process (bind-mounted
 * read-only at /dev/init, with CAP_KILL only, no_new_privs and the sandbox's seccomp filter); it reaps every
 * orphan and passes TERM, INT, HUP, QUIT, USR1, USR2 on to all processes of the sandbox, and after TERM/INT
 * exits once they are gone (or after 10 s; the kernel then kills what is left of the pid namespace).
 * Static: an image needs no libc for it. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "init.h"

#define INIT_GRACE_MS 10000

int main(void) {
  if (getpid() != 1) {
    fprintf(stderr, "velo-init: runs only as pid 1 of a sandbox\n");
    return 1;
  }
  /* tenant processes (same uid) must not ptrace init or read its memory */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    if (null > 2) close(null);
  }
  init_loop(INIT_GRACE_MS);
  return 0;
}
