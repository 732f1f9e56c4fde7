/* Error reporting for velo's C code (crun style): functions return < 0 and fill a velo_err that captured
 * errno at the point of failure, with a message naming what failed. */
#ifndef VELO_ERR_H
#define VELO_ERR_H
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct velo_err {
  int errnum;     /* errno at the failure, or 0 for a logical error */
  char msg[768];  /* "what: why" (room for a path or two) */
};

/* Record an error; captures errno first so nothing in between can clobber it. Always returns -1. */
__attribute__((format(printf, 3, 4))) static inline int velo_fail(struct velo_err *err, int errnum, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (errnum && n >= 0 && (size_t)n < sizeof err->msg)
      snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(errnum));
    err->errnum = errnum;
  }
  errno = errnum ? errnum : EINVAL;
  return -1;
}

#define VELO_FAIL_ERRNO(err, ...) velo_fail((err), errno, __VA_ARGS__)

/* Cleanup attributes instead of goto chains. */
static inline void velo_closep(int *fd) { if (*fd >= 0) { int e = errno; close(*fd); errno = e; } }
static inline void velo_freep(void *p) { free(*(void **)p); }
#define cleanup_fd __attribute__((cleanup(velo_closep)))
#define cleanup_free __attribute__((cleanup(velo_freep)))

#endif
