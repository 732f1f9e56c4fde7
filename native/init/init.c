/* velo-init's loop: reap every orphan, pass TERM/INT/HUP/QUIT/USR1/USR2 on to every process of the sandbox, and
 * after TERM or INT exit once they are gone (or after the grace; the kernel then kills what is left of the pid
 * namespace). System calls only (sys.h). */
#include "init.h"

#include "sys.h"

/* Any process in this pid namespace but us: the first numeric entry of /proc above 1. */
static int others_alive(void) {
  long d = SYS3(SYS_openat, AT_FDCWD, "/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) return 0;
  char buf[2048] __attribute__((aligned(8)));
  int found = 0;
  long n;
  while (!found && (n = SYS3(SYS_getdents64, d, buf, sizeof buf)) > 0) {
    for (long off = 0; off < n && !found;) {
      /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name */
      const char *rec = buf + off;
      unsigned short reclen = *(const unsigned short *)(rec + 16);
      const char *name = rec + 19;
      long pid = 0;
      const char *c = name;
      while (*c >= '0' && *c <= '9' && pid < 100000000) pid = pid * 10 + (*c++ - '0');
      if (c != name && *c == 0 && pid > 1) found = 1;
      off += reclen;
    }
  }
  SYS1(SYS_close, d);
  return found;
}

static long now_ms(void) {
  struct timespec t = {0, 0};
  SYS2(SYS_clock_gettime, CLOCK_MONOTONIC, &t); /* the system call, not the vDSO: no page tables for it */
  return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void reap(void) {
  while (SYS4(SYS_wait4, -1, 0, WNOHANG, 0) > 0) {
  }
}

void init_loop(int grace_ms) {
  static const int SIGS[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  ksigset set = 0;
  for (unsigned i = 0; i < sizeof SIGS / sizeof SIGS[0]; i++) set |= KSIGBIT(SIGS[i]);
  SYS4(SYS_rt_sigprocmask, SIG_BLOCK, &set, 0, sizeof set);
  long deadline = -1;
  for (;;) {
    unsigned char info[128] __attribute__((aligned(8))); /* siginfo_t; only the return value is used */
    struct timespec tick = {0, 20 * 1000000};
    long sig = SYS4(SYS_rt_sigtimedwait, &set, info, deadline >= 0 ? &tick : 0, sizeof set);
    if (sig == SIGCHLD || sig < 0) {
      reap();
    } else {
      SYS2(SYS_kill, -1, sig); /* every process of this pid namespace but us */
      if ((sig == SIGTERM || sig == SIGINT) && deadline < 0) deadline = now_ms() + grace_ms;
    }
    if (deadline >= 0) {
      reap();
      if (!others_alive() || now_ms() >= deadline) SYS1(SYS_exit_group, 0);
    }
  }
}
