#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/vlog.h"
#include "front.h"

#include "util.h"

/* path.resolve, as src/lib/home.ts: the store path is written into state files and plans, so it must be the
 * same string Node would use (no realpath: a home reached through a symlink keeps its name) */
static char *absolute(const char *p) { return path_resolve(p); }

/* path.join(dir, tail) for an absolute dir: normalised (a $XDG_DATA_HOME of "/x/" gives /x/velo, not /x//velo).
 * A relative dir (an empty or relative $HOME or $XDG_DATA_HOME) gives Node a relative store path: NULL, so
 * Node serves the call. */
static char *join_abs(const char *dir, const char *tail) {
  if (dir[0] != '/') return NULL;
  char *joined, *out;
  if (asprintf(&joined, "%s/%s", dir, tail) < 0) return NULL;
  out = path_resolve(joined);
  free(joined);
  return out;
}

char *front_home(const char *flag) {
  if (flag && *flag) return absolute(flag);
  const char *env = getenv("VELO_HOME");
  if (env && *env) return absolute(env);
  if (getuid() == 0) return strdup("/var/lib/velo");
  const char *xdg = getenv("XDG_DATA_HOME");
  if (xdg && *xdg) return join_abs(xdg, "velo");
  /* os.homedir(): $HOME whenever it is set (even empty), else the passwd entry — that lookup (NSS) is Node's:
   * this binary is linked statically, and a call without HOME is rare enough to pay for Node (NULL: fall back) */
  const char *h = getenv("HOME");
  if (!h) return NULL;
  return join_abs(h, ".local/share/velo");
}

/* the exit codes of src/lib/errors.ts: 1 user error, 2 usage, 3 integrity, 70 bug */
int front_exit_code(const char *code) {
  if (!strcmp(code, "USAGE") || !strcmp(code, "INVALID_NAME")) return 2;
  if (!strcmp(code, "INTEGRITY")) return 3;
  if (!strcmp(code, "INTERNAL")) return 70;
  return 1;
}

void front_json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    case '\b': fputs("\\b", f); break;
    case '\f': fputs("\\f", f); break;
    default:
      if (*p < 0x20) fprintf(f, "\\u%04x", *p);
      else fputc(*p, f);
    }
  }
  fputc('"', f);
}

int front_error(bool json, const char *code, const char *message, const char *suggestion) {
  if (json) {
    fputs("{\n  \"error\": {\n    \"code\": ", stdout);
    front_json_str(stdout, code);
    fputs(",\n    \"message\": ", stdout);
    front_json_str(stdout, message);
    if (suggestion) {
      fputs(",\n    \"suggestion\": ", stdout);
      front_json_str(stdout, suggestion);
    }
    fputs("\n  }\n}\n", stdout);
    fflush(stdout);
  } else if (vlog_json()) {
    const char *kv[] = {"code", code, suggestion ? "suggestion" : NULL, suggestion, NULL};
    vlog_emit("error", "velo", message, kv);
  } else {
    fprintf(stderr, "velo: error [%s]: %s\n", code, message);
    if (suggestion) fprintf(stderr, "  suggestion: %s\n", suggestion);
    if (!strcmp(code, "INTERNAL")) fputs("  this is a bug in velo; rerun with VELO_DEBUG=1 for a stack trace\n", stderr);
  }
  return front_exit_code(code);
}
