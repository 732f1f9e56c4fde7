/* Reading an image record from the manifest database (LMDB, written by src/manifest/db.ts). */
#ifndef VELO_FRONT_IMAGE_H
#define VELO_FRONT_IMAGE_H
#include <stddef.h>
#include "velo_err.h"

struct front_image {
  char *name;
  char **layers;    /* hex layer ids, BOTTOM first (as ImageRecord.layers) */
  size_t n_layers;
  char **env;       /* config.env (K=V), may be empty */
  size_t n_env;
  char *user;       /* config.user or NULL */
  char *workdir;    /* config.workingDir or NULL */
  char *json;       /* the raw record */
  char *source;     /* ImageRecord.source (what was ingested; `velo run` projects at ./<its basename>) or NULL */
};

/* 1 = found, 0 = no such image, -1 = error (err filled). */
int front_image_load(const char *home, const char *name, struct front_image *img, struct velo_err *err);
void front_image_free(struct front_image *img);

#endif
