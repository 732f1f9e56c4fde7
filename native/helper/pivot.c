#include "pivot.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/syscall.h>

int pivot_into(const char *root, struct velo_err *e) {
  cleanup_fd int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "open new root %s", root);
  if (fchdir(fd) < 0) return VELO_FAIL_ERRNO(e, "chdir to new root %s", root);
  /* pivot_root(".", "."): the old root ends up stacked on top of the new one, then gets detached. */
  if (syscall(SYS_pivot_root, ".", ".") < 0) return VELO_FAIL_ERRNO(e, "pivot_root into %s", root);
  if (umount2(".", MNT_DETACH) < 0) return VELO_FAIL_ERRNO(e, "detach the old root");
  if (chdir("/") < 0) return VELO_FAIL_ERRNO(e, "chdir /");
  return 0;
}
