/* The skeleton builder behind `velo-project build` and the native `velo run` (build.c). */
#ifndef VELO_BUILD_H
#define VELO_BUILD_H
#include "velo_err.h"

#define VELO_BUILD_OTHER (-3) /* ROOT holds something else: not this image's projection (velo-project exits 3) */

struct velo_build_result {
  int fresh; /* it was complete already: nothing done (one getxattr) */
  unsigned long files, placeholders, dirs, symlinks, others, skipped;
};

#define VELO_STAMP_LEN 32
/* OUT = the "v1:<hex>" stamp a complete skeleton of LAYERS (TOP first) carries in its user.velo.image xattr. */
void velo_project_stamp(const char *const *layers, int n, char out[VELO_STAMP_LEN]);

/* Make ROOT the placeholder skeleton of the image whose layers (TOP first) are LAYERS: see project.c.
 * 0 = done (or fresh), VELO_BUILD_OTHER, or -1; err filled on failure. Uses R (real.h), so the caller links
 * real_libc.c (or is the shim). */
int velo_project_build(const char *home, const char *root, const char *const *layers, int n, struct velo_build_result *res,
                       struct velo_err *err);

#endif
