/* Shared helpers: the error struct every step fills, cleanup attributes, small file writers. */
#ifndef VELO_UTIL_H
#define VELO_UTIL_H
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* Every function that can fail returns < 0 and fills one of these; errno is captured at once. */
struct verr {
  int err;        /* errno at the failure, 0 if none */
  char msg[768];  /* what failed, with the path or value involved */
};

__attribute__((format(printf, 3, 4))) int verr_set(struct verr *e, int errnum, const char *fmt, ...);
/* verr_set with the current errno, captured before anything else runs. */
#define VERR(e, ...) verr_set((e), errno, __VA_ARGS__)

static inline void close_fdp(int *fd) {
  if (*fd >= 0) {
    int saved = errno;
    close(*fd);
    errno = saved;
  }
}
static inline void free_p(void *p) { free(*(void **)p); }
#define cleanup_fd __attribute__((cleanup(close_fdp)))
#define cleanup_free __attribute__((cleanup(free_p)))

int write_file_at(int dirfd, const char *path, const char *data, struct verr *e);
int write_all(int fd, const void *buf, size_t n);
/* Field 22 of /proc/PID/stat (start time in clock ticks), and the state letter; < 0 if the pid is gone. */
int proc_starttime(pid_t pid, unsigned long long *start, char *state);
void die_verr(const char *what, const struct verr *e) __attribute__((noreturn));

#endif
