#include "tty.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>

int tty_open_in_sandbox(struct sb_tty *t, struct velo_err *e) {
  t->master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (t->master < 0) return VELO_FAIL_ERRNO(e, "open the sandbox's /dev/ptmx");
  if (unlockpt(t->master) < 0) return VELO_FAIL_ERRNO(e, "unlockpt");
  if (ptsname_r(t->master, t->slave, sizeof t->slave) != 0) return VELO_FAIL_ERRNO(e, "ptsname");
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(t->master, TIOCSWINSZ, &ws);
  return 0;
}

int tty_attach_child(const struct sb_tty *t, struct velo_err *e) {
  if (setsid() < 0) return VELO_FAIL_ERRNO(e, "setsid");
  int s = open(t->slave, O_RDWR); /* session leader without a terminal: this becomes its controlling tty */
  if (s < 0) return VELO_FAIL_ERRNO(e, "open %s", t->slave);
  if (ioctl(s, TIOCSCTTY, 0) < 0) return VELO_FAIL_ERRNO(e, "make %s the controlling terminal", t->slave);
  if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0) return VELO_FAIL_ERRNO(e, "stdio to %s", t->slave);
  if (s > 2) close(s);
  close(t->master);
  return 0;
}

