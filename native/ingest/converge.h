/* velo-converge's two passes (velo-converge.c plans, converge-apply.c applies) and what they share. */
#ifndef VELO_CONVERGE_H
#define VELO_CONVERGE_H
/* The exit status says what kind of failure ended it, so the caller (src/volume/restore.ts) maps it to an error code
 * without reading the message: */
enum {
  CONVERGE_EXIT_OTHER = 1,
  CONVERGE_EXIT_INTEGRITY = 2,  /* a store object the snapshot needs is missing or not what the snapshot says */
  CONVERGE_EXIT_NO_SPACE = 3,   /* ENOSPC, EDQUOT */
  CONVERGE_EXIT_PERMISSION = 4, /* EACCES, EPERM */
};
/* "velo-converge: WHAT[: strerror(E)]" on stderr and exit with E's class, from any thread (the first to fail
 * reports) */
__attribute__((noreturn)) void converge_die(const char *what, int e);
/* the same, exit CONVERGE_EXIT_INTEGRITY */
__attribute__((noreturn)) void converge_die_integrity(const char *what);
/* velo-converge --apply DIR PLAN [--no-chown] */
int converge_apply(int argc, char **argv);
#endif
