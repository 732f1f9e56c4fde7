#include "util.h"

#include <stdio.h>

void die_verr(const char *what, const struct velo_err *e) {
  fprintf(stderr, "velo-helper: %s: %s\n", what, e->msg);
  exit(125);
}
