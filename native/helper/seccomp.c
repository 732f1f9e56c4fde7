#include "seccomp.h"

#include <sched.h>
#include <seccomp.h>
#include <string.h>

/* Syscalls a tenant never needs and that widen the kernel's attack surface or reach outside the sandbox.
 * Most also need a capability the tenant does not have; the filter is the second wall. */
static const char *const DENY[] = {
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module", "finit_module",
    "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root",
    "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot",
    "request_key", "setns", "settimeofday", "stime", "swapoff", "swapon", "_sysctl", "syslog", "umount",
    "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old", "fanotify_init",
    "lsm_set_self_attr", "open_tree_attr",
};
/* Answered "not implemented" so that libc and runtimes fall back quietly. */
static const char *const NOSYS[] = {"clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"};

static void release(scmp_filter_ctx *c) {
  if (*c) seccomp_release(*c);
}

int seccomp_default(struct velo_err *e) {
  __attribute__((cleanup(release))) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return velo_fail(e, ENOMEM, "seccomp_init");
  int r;
  if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0) return velo_fail(e, -r, "seccomp bad-arch action");
  for (size_t i = 0; i < sizeof DENY / sizeof DENY[0]; i++) {
    int nr = seccomp_syscall_resolve_name(DENY[i]);
    if (nr == __NR_SCMP_ERROR) continue; /* not a syscall on this architecture */
    if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0) return velo_fail(e, -r, "seccomp rule %s", DENY[i]);
  }
  for (size_t i = 0; i < sizeof NOSYS / sizeof NOSYS[0]; i++) {
    int nr = seccomp_syscall_resolve_name(NOSYS[i]);
    if (nr == __NR_SCMP_ERROR) continue;
    if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0)) < 0) return velo_fail(e, -r, "seccomp rule %s", NOSYS[i]);
  }
  /* clone with any namespace flag: no new namespaces (user namespaces especially) from inside. */
  static const unsigned long NSFLAGS[] = {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
  for (size_t i = 0; i < sizeof NSFLAGS / sizeof NSFLAGS[0]; i++)
    if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, NSFLAGS[i], NSFLAGS[i]))) < 0)
      return velo_fail(e, -r, "seccomp clone rule");
  if ((r = seccomp_load(ctx)) < 0) return velo_fail(e, -r, "seccomp_load");
  return 0;
}
