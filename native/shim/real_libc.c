/* The R table (real.h) for the programs that share the shim's placeholder code but are not preloaded
 * (velo-project, the native front-end): plain libc, nothing to step around. */
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "real.h"

struct velo_real R;
void velo_real_init(void) {
  R.openat = openat;
  R.fstatat = fstatat;
  R.close = close;
  R.rename = rename;
  R.readlink = readlink;
  R.getxattr = getxattr;
  R.lgetxattr = lgetxattr;
  R.fgetxattr = fgetxattr;
  R.fchown = fchown;
  R.fchmod = fchmod;
  R.futimens = futimens;
  R.unlinkat = unlinkat;
  R.realpath = realpath;
  R.ready = 1;
}
