/* fd → placeholder table: an fd redirected to a CAS object must still fstat as the projected file. Each
 * entry remembers the object's (dev, ino), so an entry left behind by a close the shim did not see (a raw
 * syscall, close_range) is recognised as stale and ignored. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

#define MAX_FD 65536
static struct velo_fdent *tab[MAX_FD];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void velo_fd_set(int fd, const struct velo_fdent *e) {
  if (fd < 0 || fd >= MAX_FD) return;
  struct velo_fdent *n = malloc(sizeof *n);
  if (!n) return;
  *n = *e;
  pthread_mutex_lock(&mu);
  struct velo_fdent *old = tab[fd];
  tab[fd] = n;
  pthread_mutex_unlock(&mu);
  free(old);
}

int velo_fd_get(int fd, struct velo_fdent *out) {
  if (fd < 0 || fd >= MAX_FD || !__atomic_load_n(&tab[fd], __ATOMIC_RELAXED)) return 0;
  int found = 0;
  pthread_mutex_lock(&mu);
  if (tab[fd]) {
    *out = *tab[fd];
    found = 1;
  }
  pthread_mutex_unlock(&mu);
  return found;
}

void velo_fd_clear(int fd) {
  if (fd < 0 || fd >= MAX_FD || !__atomic_load_n(&tab[fd], __ATOMIC_RELAXED)) return;
  pthread_mutex_lock(&mu);
  struct velo_fdent *old = tab[fd];
  tab[fd] = NULL;
  pthread_mutex_unlock(&mu);
  free(old);
}

void velo_fd_dup(int from, int to) {
  if (to < 0 || to >= MAX_FD || from == to) return;
  struct velo_fdent e;
  if (velo_fd_get(from, &e)) velo_fd_set(to, &e);
  else velo_fd_clear(to);
}

void velo_fd_refresh(int fd) {
  struct velo_fdent e;
  if (!velo_fd_get(fd, &e)) return;
  struct stat now;
  if (R.fstatat(AT_FDCWD, e.path, &now, 0) == 0 && now.st_dev == e.ph.st_dev && now.st_ino == e.ph.st_ino) {
    now.st_blocks = e.ph.st_blocks;
    e.ph = now;
    velo_fd_set(fd, &e);
  }
}
