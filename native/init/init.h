#ifndef VELO_INIT_H
#define VELO_INIT_H
/* pid 1 of a sandbox: reaps every orphan, forwards TERM/INT/HUP/QUIT/USR1/USR2 to all processes of the
 * sandbox; after TERM or INT it exits once they are gone (or after GRACE ms; the kernel then kills the rest). */
void init_loop(int grace_ms) __attribute__((noreturn));
#endif
