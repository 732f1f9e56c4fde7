/* The native front-end (native/build/velo, started by bin/velo). Each fast path serves one command exactly as
 * the Node CLI (bin/velo.js) would: same flags, output, state files, errors and exit codes. When it meets
 * anything it does not serve (an unknown flag, --help, a case only Node handles), it returns FRONT_FALLBACK
 * BEFORE any side effect, and main() execs the Node CLI with the unchanged argv. VELO_NATIVE=0 disables every
 * fast path (test/cli/front.test.ts runs both ways and compares). */
#ifndef VELO_FRONT_H
#define VELO_FRONT_H
#include <stdbool.h>
#include "velo_err.h"

#define FRONT_FALLBACK (-1000)

struct front_ctx {
  const char *pkgroot; /* the package root: bin/, native/build/, profiles/ */
  const char *argv0;
};

/* A fast path: argv[0] is the first word after the command's words (e.g. after "sandbox exec"). Returns the
 * process exit code, or FRONT_FALLBACK. */
typedef int (*front_fn)(const struct front_ctx *ctx, int argc, char **argv);

/* The store root, as src/lib/home.ts resolves it: --home, $VELO_HOME, /var/lib/velo for root, else
 * $XDG_DATA_HOME/velo or $HOME/.local/share/velo. Returns a malloc'd absolute path; NULL (fall back to Node) for a
 * non-root caller with no HOME (the passwd lookup is Node's). */
char *front_home(const char *flag);


/* Render an error as VeloCommand.catch does (code, message, suggestion; JSON on stdout with --json) and
 * return its exit code (the codes of src/lib/errors.ts). suggestion may be NULL. */
int front_error(bool json, const char *code, const char *message, const char *suggestion);
/* PERMISSION_SUGGESTION of src/lib/errors.ts, word for word */
#define FRONT_PERM_SUGGESTION                                                                                        \
  "check the permissions of that path; to use a store of your own, pass --home DIR or set VELO_HOME (without " \
  "either, a non-root user gets ~/.local/share/velo)"
int front_exit_code(const char *code);

/* Write s as a JSON string (quoted, escaped) to f. */
void front_json_str(FILE *f, const char *s);

/* The sandbox fast paths (sandbox_*.c). */
int front_sandbox_create(const struct front_ctx *ctx, int argc, char **argv);
int front_sandbox_exec(const struct front_ctx *ctx, int argc, char **argv);
int front_sandbox_rm(const struct front_ctx *ctx, int argc, char **argv);
int front_sandbox_run(const struct front_ctx *ctx, int argc, char **argv);
int front_sandbox_stop(const struct front_ctx *ctx, int argc, char **argv);
int front_sandbox_ls(const struct front_ctx *ctx, int argc, char **argv);

/* `velo __sandbox boot|exec|kill|delete`: Node's way into the sandbox lifecycle (sandbox_internal.c) */
int front_sandbox_internal(const struct front_ctx *ctx, int argc, char **argv);

/* `velo run` (run.c) */
int front_run(const struct front_ctx *ctx, int argc, char **argv);

#endif
