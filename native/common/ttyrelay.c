#include "ttyrelay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "sysutil.h"

static struct termios saved;
static int raw_set;

static void restore(void) {
  if (raw_set) tcsetattr(0, TCSADRAIN, &saved);
}

static int pump(int from, int to) {
  char buf[16384];
  ssize_t n = read(from, buf, sizeof buf);
  if (n <= 0) return n < 0 && (errno == EINTR || errno == EAGAIN) ? 0 : -1;
  return write_all(to, buf, (size_t)n);
}

int tty_relay(int master, pid_t child, const int *forward, size_t n_forward) {
  if (tcgetattr(0, &saved) == 0) {
    struct termios raw = saved;
    cfmakeraw(&raw);
    if (tcsetattr(0, TCSADRAIN, &raw) == 0) raw_set = 1, atexit(restore);
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (size_t i = 0; i < n_forward; i++) sigaddset(&set, forward[i]);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC); /* the signals are already blocked by the caller */
  int in_open = 1, status = -1;
  for (;;) {
    struct pollfd p[3] = {{.fd = master, .events = POLLIN}, {.fd = sfd, .events = POLLIN}, {.fd = in_open ? 0 : -1, .events = POLLIN}};
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents & POLLIN) pump(master, 1);
    else if (p[0].revents & (POLLHUP | POLLERR)) {
      if (status >= 0) break; /* child gone and its output drained */
    }
    if (p[2].revents & (POLLIN | POLLHUP)) {
      if (pump(0, master) < 0) in_open = 0;
    }
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) != sizeof si) continue;
      if (si.ssi_signo == SIGWINCH) {
        struct winsize ws;
        if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws); /* the kernel signals the fg group */
      } else if (si.ssi_signo == SIGCHLD) {
        int st;
        if (waitpid(child, &st, WNOHANG) == child) {
          status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
          /* drain what the child wrote before it exited */
          int fl = fcntl(master, F_GETFL);
          fcntl(master, F_SETFL, fl | O_NONBLOCK);
          while (pump(master, 1) == 0) {
            struct pollfd q = {.fd = master, .events = POLLIN};
            if (poll(&q, 1, 0) <= 0 || !(q.revents & POLLIN)) break;
          }
          break;
        }
      } else {
        kill(child, (int)si.ssi_signo);
      }
    }
  }
  restore();
  raw_set = 0;
  return status < 0 ? 125 : status;
}
