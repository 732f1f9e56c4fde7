/* velo-init: pid 1 of every velo sandbox. velo-runtime starts it as the container's process (bind-mounted
 * read-only at /dev/init, with CAP_KILL only, no_new_privs and the sandbox's seccomp filter); it reaps every
 * orphan and passes TERM, INT, HUP, QUIT, USR1, USR2 on to all processes of the sandbox, and after TERM/INT
 * exits once they are gone (or after 10 s; the kernel then kills what is left of the pid namespace).
 * Static and, where sys.h can, without a C library: an image needs no libc for it, and an idle tenant holds
 * little more than its kernel objects. */
#include "init.h"
#include "sys.h"

#define INIT_GRACE_MS 10000

static void init_main(void) __attribute__((noreturn));
static void init_main(void) {
  if (SYS0(SYS_getpid) != 1) {
    static const char msg[] = "velo-init: runs only as pid 1 of a sandbox\n";
    SYS3(SYS_write, 2, msg, sizeof msg - 1);
    SYS1(SYS_exit_group, 1);
    __builtin_unreachable();
  }
  /* tenant processes (same uid) must not ptrace init or read its memory */
  SYS2(SYS_prctl, PR_SET_DUMPABLE, 0);
  long null = SYS3(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    for (int fd = 0; fd <= 2; fd++)
      if (fd != null) SYS3(SYS_dup3, null, fd, 0); /* dup3 leaves O_CLOEXEC off the copies */
    if (null > 2) SYS1(SYS_close, null);
  }
  init_loop(INIT_GRACE_MS);
}

#ifdef VELO_INIT_FREESTANDING
/* The process entry: no C library to call main. The stack pointer is aligned as the ABI wants at a call. */
#if defined(__x86_64__)
__asm__(".text\n.global _start\n.type _start,@function\n_start:\n\txor %ebp, %ebp\n\tand $-16, %rsp\n\tcall velo_init_entry\n\thlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n.type _start,%function\n_start:\n\tmov x29, #0\n\tmov x30, #0\n\tbl velo_init_entry\n");
#endif
void velo_init_entry(void) __attribute__((noreturn, used));
void velo_init_entry(void) { init_main(); }
#else
int main(void) { init_main(); }
#endif
