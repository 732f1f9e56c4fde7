/* Lazy images: objects fetched on first open. velo-fuse starts the fetcher (a Node process given with
 * --fetcher, src/registry/fetcher.ts) as its own child, which dies with it (PR_SET_PDEATHSIG, and SIGTERM at
 * exit), and asks it over a unix socket for each object the CAS lacks: one connection per object, the request
 * "NAME\n" (the object's file name in the CAS), the answer "ok\n" once the object is in the CAS (verified and
 * linked atomically by the fetcher) or "err MESSAGE\n". Every wait is bounded by --fetch-timeout: a registry
 * that is down, slow or answering garbage gives the opener EIO and a log line naming the object, never a hang. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "velo_fuse.h"
#include "../common/vlog.h"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lazy_start_fetcher(struct velo_fs *fs, char **argv) {
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) _exit(1); /* the daemon died before prctl */
    /* keep stdio (the daemon's log), nothing else: /dev/fuse and the LMDB descriptors stay with the daemon */
    for (int fd = 3; fd < 1024; fd++) close(fd);
    signal(SIGPIPE, SIG_DFL);
    /* who its daemon is: a fetcher whose daemon is gone before it even listens (Node starts slowly) must not touch
     * the socket path, which a newer mount of the same dir may own by then (src/registry/fetcher.ts) */
    char pid[24];
    snprintf(pid, sizeof pid, "%d", (int)getppid());
    setenv("VELO_FUSE_PID", pid, 1);
    execv(argv[0], argv);
    vlog("error", "velo-fuse", "velo-fuse: cannot start the fetcher %s: %s", argv[0], strerror(errno));
    _exit(127);
  }
  fs->fetcher_pid = pid;
  return 0;
}

void lazy_stop_fetcher(struct velo_fs *fs) {
  if (fs->fetcher_pid > 0) kill(fs->fetcher_pid, SIGTERM);
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* 0 once the object at PATH is in the CAS, -EIO (logged with the object's name) when it cannot be had in time. */
int lazy_fetch(struct velo_fs *fs, const char *path) {
  const char *name = base_name(path);
  int64_t deadline = now_ms() + fs->fetch_timeout_ms;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", fs->fetch_socket);
  int fd = -1;
  /* the fetcher may still be starting: connect again until the deadline */
  for (;;) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) break;
    int e = errno;
    close(fd);
    fd = -1;
    if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN) || now_ms() >= deadline) {
      fuse_log(FUSE_LOG_ERR, "velo-fuse: lazy fetch of object %s: the fetcher is not reachable (%s)\n", name, strerror(e));
      return -EIO;
    }
    usleep(20000);
  }
  if (fd < 0) return -EIO;
  char req[512];
  int n = snprintf(req, sizeof req, "%s\n", name);
  if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
    fuse_log(FUSE_LOG_ERR, "velo-fuse: lazy fetch of object %s: cannot ask the fetcher\n", name);
    close(fd);
    return -EIO;
  }
  char buf[1024];
  size_t got = 0;
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      fuse_log(FUSE_LOG_ERR, "velo-fuse: lazy fetch of object %s: no answer within %lld ms (EIO)\n", name, (long long)fs->fetch_timeout_ms);
      close(fd);
      return -EIO;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t k = read(fd, buf + got, sizeof buf - 1 - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      fuse_log(FUSE_LOG_ERR, "velo-fuse: lazy fetch of object %s: the fetcher closed the connection (EIO)\n", name);
      close(fd);
      return -EIO;
    }
    got += (size_t)k;
    buf[got] = 0;
    char *nl = strchr(buf, '\n');
    if (!nl && got < sizeof buf - 1) continue;
    if (nl) *nl = 0;
    close(fd);
    if (strcmp(buf, "ok") == 0) return 0;
    fuse_log(FUSE_LOG_ERR, "velo-fuse: lazy fetch of object %s failed: %s (EIO)\n", name, strncmp(buf, "err ", 4) == 0 ? buf + 4 : buf);
    return -EIO;
  }
}
