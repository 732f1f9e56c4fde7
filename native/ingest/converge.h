/* velo-converge's two passes (velo-converge.c plans, converge-apply.c applies) and what they share. */
#ifndef VELO_CONVERGE_H
#define VELO_CONVERGE_H
/* "velo-converge: WHAT[: strerror(E)]" on stderr and exit 1, from any thread (the first to fail reports) */
__attribute__((noreturn)) void converge_die(const char *what, int e);
/* velo-converge --apply DIR PLAN [--no-chown] */
int converge_apply(int argc, char **argv);
#endif
