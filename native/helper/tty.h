#ifndef VELO_TTY_H
#define VELO_TTY_H
#include "util.h"
/* A terminal that belongs to the sandbox: a pty from the sandbox's own devpts (call after setns(mnt)). */
struct sb_tty {
  int master;
  char slave[64];
};
int tty_open_in_sandbox(struct sb_tty *t, struct velo_err *e);
/* In the child: new session, the slave as controlling terminal and as stdin/stdout/stderr. */
int tty_attach_child(const struct sb_tty *t, struct velo_err *e);
/* the relay itself: native/common/ttyrelay.c */
#include "../common/ttyrelay.h"
#endif
