/* Flag parsing for the fast paths: the algorithm of src/lib/mini-oclif.ts parse() (which serves these commands
 * on the Node side), so a fast path reads argv exactly as Node would. Anything Node would answer with a
 * usage error (unknown flag, missing value, repeated single flag, extra argument) is reported as
 * "not served" (< 0) and the caller falls back to Node, which renders that error. */
#ifndef VELO_FRONT_ARGS_H
#define VELO_FRONT_ARGS_H
#include <stdbool.h>
#include <stddef.h>

#define ARGS_MAX_FLAGS 24
#define ARGS_MAX_VALUES 256

struct flag_def {
  const char *name; /* long name, without -- */
  char ch;          /* short char or 0 */
  bool option;      /* takes a value (else boolean) */
  bool multiple;    /* repeatable; never greedy (every velo flag is multipleNonGreedy: a bare word after it is an argument) */
};

struct flag_val {
  int count;
  const char *values[ARGS_MAX_VALUES]; /* option values in order (booleans: count only) */
};

struct parsed_args {
  struct flag_val flags[ARGS_MAX_FLAGS];
  const char *args[ARGS_MAX_VALUES]; /* positional tokens in order (incl. those after --) */
  int n_args;
  bool json; /* `--json` among the tokens before `--` (how VeloCommand.jsonEnabled decides) */
};

/* 0 = parsed; < 0 = Node must serve this call (a usage error, --help, or something this parser does not know). */
int args_parse(const struct flag_def *defs, int n_defs, int argc, char **argv, struct parsed_args *out);

/* Docker's habit (src/lib/docker-argv.ts, the same rule): flags end at the first word after NAME or IMAGE.
 *   ARGS_SHAPE_NAME:  [flags] NAME [flags] CMD...  → [flags] NAME [flags] -- CMD...
 *   ARGS_SHAPE_IMAGE: [flags] IMAGE [flags] CMD... → [flags] --image IMAGE [flags] -- CMD...
 * Returns a new argv (the process keeps it) and its length in *outc; argv itself when nothing changes. */
enum args_shape { ARGS_SHAPE_NAME, ARGS_SHAPE_IMAGE };
char **args_docker_shape(const struct flag_def *defs, int n_defs, int argc, char **argv, enum args_shape shape, int *outc);

/* Index of a flag by long name (the def table is the caller's), -1 if absent. */
static inline const char *args_one(const struct parsed_args *p, int idx) {
  return p->flags[idx].count ? p->flags[idx].values[0] : NULL;
}

#endif
