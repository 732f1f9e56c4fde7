#include "caps.h"

#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int last_cap(void) {
  /* The kernel knows caps up to cap_last_cap; probing with PR_CAPBSET_READ finds it without /proc. */
  int c = CAP_LAST_CAP;
  while (prctl(PR_CAPBSET_READ, c + 1, 0, 0, 0) >= 0) c++;
  return c;
}

int caps_drop_bounding(uint64_t keep, struct velo_err *e) {
  int last = last_cap();
  for (int c = 0; c <= last; c++) {
    if (c < 64 && (keep & (1ULL << c))) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) return VELO_FAIL_ERRNO(e, "drop capability %d from the bounding set", c);
  }
  return 0;
}

int caps_set(uint64_t keep, struct velo_err *e) {
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2] = {{0}};
  if (syscall(SYS_capget, &h, d) < 0) return VELO_FAIL_ERRNO(e, "capget");
  uint64_t have = (uint64_t)d[0].permitted | ((uint64_t)d[1].permitted << 32);
  uint64_t want = keep & have;
  d[0].permitted = d[0].effective = (uint32_t)want;
  d[1].permitted = d[1].effective = (uint32_t)(want >> 32);
  d[0].inheritable = d[1].inheritable = 0;
  if (syscall(SYS_capset, &h, d) < 0) return VELO_FAIL_ERRNO(e, "capset");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return VELO_FAIL_ERRNO(e, "clear ambient capabilities");
  return 0;
}

int switch_user(uid_t uid, gid_t gid, struct velo_err *e) {
  if (setgroups(0, NULL) < 0) return VELO_FAIL_ERRNO(e, "setgroups");
  if (setresgid(gid, gid, gid) < 0) return VELO_FAIL_ERRNO(e, "setgid %u", (unsigned)gid);
  if (setresuid(uid, uid, uid) < 0) return VELO_FAIL_ERRNO(e, "setuid %u", (unsigned)uid);
  return 0;
}
