#ifndef VELO_INIT_SYS_H
#define VELO_INIT_SYS_H
/* The few system calls velo-init makes. On x86_64 and aarch64 it is built without a C library (-nostdlib): an
 * idle tenant is only its init, and a static glibc's start-up (TLS set up on a heap, ifunc relocations, the vDSO
 * looked up) leaves ~44 KiB of private pages and 16 KiB more page tables in every tenant (measured with
 * /proc/PID/smaps_rollup and VmPTE; docs/operations.md). Elsewhere the same code calls syscall(2). Only
 * macros and types come from the C library's headers. Every call returns -errno on failure, as the kernel does. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#if defined(__x86_64__) && defined(VELO_INIT_FREESTANDING)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__) && defined(VELO_INIT_FREESTANDING)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d, x4 __asm__("x4") = e, x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory", "cc");
  return x0;
}
#elif defined(VELO_INIT_FREESTANDING)
#error "velo-init: no system call entry for this architecture without a C library (build it without VELO_INIT_FREESTANDING)"
#else
#include <errno.h>
#include <unistd.h>
static inline long sys6(long n, long a, long b, long c, long d, long e, long f) {
  long r = syscall(n, a, b, c, d, e, f);
  return r < 0 ? -errno : r;
}
#endif

#define SYS0(n) sys6((n), 0, 0, 0, 0, 0, 0)
#define SYS1(n, a) sys6((n), (long)(a), 0, 0, 0, 0, 0)
#define SYS2(n, a, b) sys6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define SYS3(n, a, b, c) sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SYS4(n, a, b, c, d) sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* the kernel's sigset_t: one bit per signal, 8 bytes (glibc's is 128) */
typedef uint64_t ksigset;
#define KSIGBIT(s) ((ksigset)1 << ((s)-1))

#endif
