/* Small system helpers shared by velo's native programs (the front-end, velo-runtime): one copy
 * of each, errors as velo_err where a message is useful, errno otherwise. */
#ifndef VELO_SYSUTIL_H
#define VELO_SYSUTIL_H
#include <stddef.h>
#include <sys/types.h>

#include "velo_err.h"

/* write all n bytes (EINTR retried); -1 with errno */
int write_all(int fd, const void *buf, size_t n);
/* open dirfd/path for writing (never through a final symlink) and write data */
int write_file_at(int dirfd, const char *path, const char *data, struct velo_err *e);
/* Replace dirfd/name with data as one step: NAME.tmp (never through a symlink, a stale one removed first) written
 * whole, then renamed over name; readers see the old file or the new one. -1 with errno. */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t n, mode_t mode);
/* Field 22 of /proc/PID/stat (start time in clock ticks), and the state letter; < 0 if the pid is gone. */
int proc_starttime(pid_t pid, unsigned long long *start, char *state);
/* rm -rf of dfd/name: never follows a symlink, stays on names; a missing name is fine. -1 with errno. */
int rm_tree_at(int dfd, const char *name);
/* bring lo up in the caller's network namespace */
int loopback_up(struct velo_err *e);

#endif
