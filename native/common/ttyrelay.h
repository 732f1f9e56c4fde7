/* The terminal relay of a foreground process with a pty (velo sandbox exec -t, velo-runtime exec/run -t
 * without an engine's console socket): our stdin raw, stdin -> master and master -> stdout, the window size
 * copied on SIGWINCH, the other signals passed to the child, until it exits. */
#ifndef VELO_TTYRELAY_H
#define VELO_TTYRELAY_H
#include <stddef.h>
#include <sys/types.h>

/* The caller has blocked SIGCHLD and the forwarded signals. Returns the child's exit code (128+N for signal N). */
int tty_relay(int master, pid_t child, const int *forward, size_t n_forward);

#endif
