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

/* write_all, write_file_at, proc_starttime, rm_tree_at, loopback_up: one copy in native/common/sysutil.c */
#include "../common/sysutil.h"
void die_verr(const char *what, const struct velo_err *e) __attribute__((noreturn));

#endif
