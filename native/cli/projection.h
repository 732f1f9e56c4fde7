/* The read-only half of src/run/projection.ts for the native `velo run`: where an image is projected, which
 * skeleton stands for it, whether that skeleton is ready and held, and the environment of the program.
 * Anything that would have to be written (a gc hold, a skeleton, a cache directory) is left to the Node
 * path: these functions answer FRONT_FALLBACK, having changed nothing. */
#ifndef VELO_FRONT_PROJECTION_H
#define VELO_FRONT_PROJECTION_H
#include <stdbool.h>
#include "image.h"

struct front_proj {
  char *root;   /* where the program sees the image */
  char *skel;   /* the skeleton directory: root (solid) or <cache>/phantom/<id> */
  bool phantom;
};

/* resolveRoot(at ?? defaultRoot(img.source)). 0 or FRONT_FALLBACK. */
int front_proj_root(const char *at, const struct front_image *img, char **root);

/* prepareProjection() where the gc hold "projection:<skel>" exists with the image's layers: 0 = the skeleton
 * is stamped complete for them (the usual run), 1 = it must be built first (front_proj_build: a first run
 * after the hold was made, e.g. the directory was removed or a build was interrupted), FRONT_FALLBACK =
 * Node must write the hold or create a directory (or report an error this does not render). */
int front_proj_ready(const char *home, const struct front_image *img, const char *root, bool phantom, struct front_proj *p);

/* buildSkeleton(), in-process (native/shim/build.c, velo-project's code). 0, or the exit code of the error
 * it rendered as the Node CLI does (STATE when the place holds something else, NATIVE otherwise). */
int front_proj_build(bool json, const char *home, const struct front_image *img, const struct front_proj *p);
void front_proj_free(struct front_proj *p);

/* projectionEnv(): a malloc'd envp for the program (environ order kept, new variables appended as
 * Node's object spread would), or NULL with errno set. */
char **front_proj_env(const char *pkgroot, const char *home, const char *image, const struct front_proj *p);

#endif
