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
/* In the parent: stdin raw, relay stdin → master and master → stdout, window size on SIGWINCH, until the
 * child exits; returns its exit code (128+N for a signal). */
int tty_relay(struct sb_tty *t, pid_t child, const int *forward, size_t n_forward);
#endif
