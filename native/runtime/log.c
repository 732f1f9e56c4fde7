/* The runtime's global options and its error/log output: the part of main that the library needs too (the
 * native front-end links the library and sets G.root itself; G.log stays unset there, so only errors it
 * prints itself reach the user). */
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "../common/vlog.h"
#include "rt.h"

struct gopts G = {.root = "/run/velo-runtime"};

static void json_escape_to(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch == '\n') fputs("\\n", f);
    else if (ch == '\t') fputs("\\t", f);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

static void log_line(const char *level, const char *msg) {
  if (!G.log) return;
  int fd = open(G.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  FILE *f = fdopen(fd, "a");
  if (!f) {
    close(fd);
    return;
  }
  char ts[64];
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  struct tm tm;
  gmtime_r(&t.tv_sec, &tm);
  size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof ts - n, ".%09ldZ", t.tv_nsec);
  if (G.log_json) {
    fputs("{\"level\":", f);
    json_escape_to(f, level);
    fputs(",\"msg\":", f);
    json_escape_to(f, msg);
    fputs(",\"time\":", f);
    json_escape_to(f, ts);
    const char *trace = getenv("VELO_TRACE_ID");
    if (trace && *trace) {
      fputs(",\"trace\":", f);
      json_escape_to(f, trace);
    }
    fputs("}\n", f);
  } else {
    fprintf(f, "%s %s velo-runtime: %s\n", ts, level, msg);
  }
  fclose(f);
}

void rt_log(const char *level, const char *fmt, ...) {
  if (!strcmp(level, "debug") && !G.debug) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_line(level, msg);
  if (G.debug && !G.log) fprintf(stderr, "velo-runtime: %s: %s\n", level, msg);
}

int rt_err(const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_line("error", msg);
  if (vlog_json()) vlog_emit("error", "velo-runtime", msg, NULL);
  else fprintf(stderr, "velo-runtime: %s\n", msg);
  return 1;
}

int rt_verr(const struct velo_err *e) { return rt_err("%s", e->msg[0] ? e->msg : "unknown error"); }

