/* Small pieces the sandbox fast paths share: the checks and formats that must match the Node side. */
#ifndef VELO_FRONT_UTIL_H
#define VELO_FRONT_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

/* strict UTF-8 (no overlongs, no surrogates): what Node decodes argv and files to without replacement */
bool utf8_valid(const char *s);
/* s decoded as Node decodes UTF-8: every invalid sequence replaced by U+FFFD (malloc'd) */
char *utf8_lossy(const char *s);

/* src/lib/names.ts validateName: ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$ and no "..". */
bool name_valid(const char *s);

/* A double as JSON.stringify writes it (shortest round-trip digits, no exponent in the ranges we write). */
void fmt_number(char *buf, size_t len, double v);

/* new Date().toISOString(): 2026-11-21T14:06:13.569Z */
void iso_now(char *buf, size_t len);

/* monotonic milliseconds (process.hrtime.bigint() / 1e6 differences) */
double now_ms(void);
/* now_ms() - t in whole nanoseconds (at most six decimals, like the Node side's timings) */
double ms_since(double t);

/* An error the way fromSystemError (src/lib/errors.ts) renders a failed system call on WHAT, rendered with
 * front_error; returns the exit code. */
int front_sys_error(bool json, int errnum, const char *what);

/* While set, front_sys_error and sb_err render nothing (a clean-up after a failure must not print a second
 * error: Node's create ignores its removeSandbox's errors). */
extern bool front_mute;

/* velo's JSON output style (JSON.stringify(v, null, 2)): a tiny streaming writer. */
struct jw {
  FILE *f;
  int depth;
  bool first[32];
};
void jw_begin_obj(struct jw *w);
void jw_end_obj(struct jw *w);
void jw_begin_arr(struct jw *w);
void jw_end_arr(struct jw *w);
void jw_key(struct jw *w, const char *key); /* then exactly one value or begin_* */
void jw_str(struct jw *w, const char *s);
void jw_num(struct jw *w, double v);
void jw_raw(struct jw *w, const char *text); /* a value already in JSON form (a number, true, false) */

/* write DATA to DIR/NAME through DIR/.TMP (mode 0600, O_EXCL|O_NOFOLLOW) and rename: never a half file */
int write_file_atomic(int dirfd, const char *name, const char *data, size_t len);

/* path.resolve(p) of Node: absolute (from the cwd), normalised, symlinks NOT resolved. malloc'd. */
char *path_resolve(const char *p);

#endif
