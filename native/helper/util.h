/* Shared helpers: the error struct every step fills, cleanup attributes, small file writers. */
#ifndef VELO_UTIL_H
#define VELO_UTIL_H
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* Errors: struct velo_err, velo_fail / VELO_FAIL_ERRNO and the cleanup attributes come from the one
 * definition in native/common/velo_err.h (functions return < 0 and fill it; errno captured at once). */
#include "../common/velo_err.h"

int write_file_at(int dirfd, const char *path, const char *data, struct velo_err *e);
int write_all(int fd, const void *buf, size_t n);
/* Field 22 of /proc/PID/stat (start time in clock ticks), and the state letter; < 0 if the pid is gone. */
int proc_starttime(pid_t pid, unsigned long long *start, char *state);
void die_verr(const char *what, const struct velo_err *e) __attribute__((noreturn));

#endif
