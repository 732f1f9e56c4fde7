/* process.terminal: the pty is made inside the container (from its own devpts, so `tty` names /dev/pts/N
 * there) and its master is sent over --console-socket with SCM_RIGHTS, as runc and crun do; the engine (the
 * containerd shim, conmon) relays it. */
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>

#include "rt.h"

int console_connect(const char *path, struct velo_err *e) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return velo_fail(e, ENAMETOOLONG, "--console-socket %s", path);
  strcpy(sa.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return VELO_FAIL_ERRNO(e, "--console-socket: socket");
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int err = errno;
    close(s);
    return velo_fail(e, err, "--console-socket: connect %s", path);
  }
  return s;
}

static int send_fd(int sock, int fd, const char *name, struct velo_err *e) {
  char cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec iov = {.iov_base = (void *)name, .iov_len = strlen(name)};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n;
  do n = sendmsg(sock, &m, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return VELO_FAIL_ERRNO(e, "send the terminal to --console-socket");
  return 0;
}

int console_setup(int sock, unsigned short rows, unsigned short cols, struct velo_err *e) {
  cleanup_fd int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return VELO_FAIL_ERRNO(e, "open /dev/ptmx in the container (process.terminal needs a devpts mount at /dev/pts)");
  if (unlockpt(master) < 0) return VELO_FAIL_ERRNO(e, "unlockpt");
  char name[64];
  if (ptsname_r(master, name, sizeof name) != 0) return VELO_FAIL_ERRNO(e, "ptsname");
  /* the size from process.consoleSize, else that of the terminal we were started from (still our stdin here):
   * right from the process's first instruction — set later (console_recv), a program that asks at once
   * (stty size) could see 0x0 */
  struct winsize ws = {.ws_row = rows, .ws_col = cols};
  if ((rows || cols) || (ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)) ioctl(master, TIOCSWINSZ, &ws);
  int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) return VELO_FAIL_ERRNO(e, "open %s", name);
  if (send_fd(sock, master, "/dev/ptmx", e) < 0) return close(slave), -1;
  /* we are a session leader (setsid earlier): the slave becomes our controlling terminal and our stdio */
  if (ioctl(slave, TIOCSCTTY, 0) < 0) return VELO_FAIL_ERRNO(e, "make %s the controlling terminal", name);
  if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0) return VELO_FAIL_ERRNO(e, "stdio to %s", name);
  if (slave > 2) close(slave);
  return 0;
}

int console_recv(int sock, struct velo_err *e) {
  char name[64], cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  ssize_t n;
  do n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
  if (!c || c->cmsg_type != SCM_RIGHTS) return velo_fail(e, n < 0 ? errno : 0, "receive the container's terminal");
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  /* the container's window follows ours from the start (the relay copies later changes) */
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(fd, TIOCSWINSZ, &ws);
  return fd;
}
