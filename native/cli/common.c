#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "front.h"

/* Node's path.resolve: join onto the cwd, then drop "", "." and ".." components lexically. */
char *front_path_resolve(const char *p) {
  char cwd[PATH_MAX];
  char *joined;
  if (p[0] == '/') {
    joined = strdup(p);
  } else {
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    if (asprintf(&joined, "%s/%s", cwd, p) < 0) joined = NULL;
  }
  if (!joined) return NULL;
  char *out = malloc(strlen(joined) + 2);
  if (!out) {
    free(joined);
    return NULL;
  }
  size_t n = 0;
  for (char *save = NULL, *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, ".")) continue;
    if (!strcmp(c, "..")) {
      while (n > 0 && out[n - 1] != '/') n--;
      if (n > 0) n--; /* the slash before the dropped component */
      continue;
    }
    out[n++] = '/';
    size_t l = strlen(c);
    memcpy(out + n, c, l);
    n += l;
  }
  if (n == 0) out[n++] = '/';
  out[n] = 0;
  free(joined);
  return out;
}

char *front_home(const char *flag) {
  /* path.resolve: lexical, symlinks kept (the store path ends up in the environment: VELO_SHIM_CAS) */
  if (flag && *flag) return front_path_resolve(flag);
  const char *env = getenv("VELO_HOME");
  if (env && *env) return front_path_resolve(env);
  if (getuid() == 0) return strdup("/var/lib/velo");
  const char *xdg = getenv("XDG_DATA_HOME");
  char *out;
  if (xdg && *xdg) {
    if (asprintf(&out, "%s/velo", xdg) < 0) return NULL;
    return out;
  }
  const char *h = getenv("HOME");
  if (!h || !*h) {
    struct passwd *pw = getpwuid(getuid());
    h = pw ? pw->pw_dir : "/";
  }
  if (asprintf(&out, "%s/.local/share/velo", h) < 0) return NULL;
  return out;
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
  } else {
    fprintf(stderr, "velo: error [%s]: %s\n", code, message);
    if (suggestion) fprintf(stderr, "  suggestion: %s\n", suggestion);
    if (!strcmp(code, "INTERNAL")) fputs("  this is a bug in velo; rerun with VELO_DEBUG=1 for a stack trace\n", stderr);
  }
  return front_exit_code(code);
}
