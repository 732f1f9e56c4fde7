/* Structured logs: with VELO_LOG=json every human line a velo process writes to stderr (the native front-end,
 * velo-runtime, the workload monitor; the Node CLI in src/lib/log.ts) is one JSON object instead:
 *   {"time": RFC 3339 ns, "level": "info"|"warning"|"error", "component": "velo"|"velo-runtime"|...,
 *    "trace": $VELO_TRACE_ID, "pid": N, "msg": "...", ...fields}
 * The first velo process of a call picks the trace id (16 hex digits) and puts it in the environment, so every
 * process the call starts — Node behind the native front door, the runtime, the monitor, plugins — carries it:
 * `grep '"trace":"ID"'` follows one call's work across processes. Header-only: the front-end, the runtime and
 * the FUSE daemon each include it. */
#ifndef VELO_VLOG_H
#define VELO_VLOG_H
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

__attribute__((unused)) static bool vlog_json(void) {
  const char *v = getenv("VELO_LOG");
  return v && !strcmp(v, "json");
}

/* The call's trace id, made (and exported to children) when this is the call's first velo process. */
__attribute__((unused)) static const char *vlog_trace(void) {
  const char *t = getenv("VELO_TRACE_ID");
  if (t && *t) return t;
  unsigned char r[8];
  char hex[17];
  if (getrandom(r, sizeof r, GRND_NONBLOCK) != sizeof r) {
    unsigned long long x = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
    memcpy(r, &x, sizeof r);
  }
  for (int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", r[i]);
  setenv("VELO_TRACE_ID", hex, 0);
  return getenv("VELO_TRACE_ID");
}

__attribute__((unused)) static void vlog_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

/* One JSON line on stderr: level, component, msg, then key/value pairs (kv: "k", "v", ..., NULL). One fputs of the
 * whole line, so lines of processes sharing the stream do not interleave. */
__attribute__((unused)) static void vlog_emit(const char *level, const char *component, const char *msg, const char *const *kv) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char t[64];
  size_t n = strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(t + n, sizeof t - n, ".%09ldZ", ts.tv_nsec);
  fputs("{\"time\":", f);
  vlog_str(f, t);
  fputs(",\"level\":", f);
  vlog_str(f, level);
  fputs(",\"component\":", f);
  vlog_str(f, component);
  fputs(",\"trace\":", f);
  vlog_str(f, vlog_trace());
  fprintf(f, ",\"pid\":%d,\"msg\":", (int)getpid());
  vlog_str(f, msg);
  for (; kv && kv[0] && kv[1]; kv += 2) {
    fputc(',', f);
    vlog_str(f, kv[0]);
    fputc(':', f);
    vlog_str(f, kv[1]);
  }
  fputs("}\n", f);
  if (fclose(f) == 0) {
    fwrite(buf, 1, len, stderr);
    fflush(stderr);
  }
  free(buf);
}

/* A human line for stderr: as it is, or (VELO_LOG=json) as one JSON object. */
__attribute__((format(printf, 3, 4), unused)) static void vlog(const char *level, const char *component, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (vlog_json()) vlog_emit(level, component, msg, NULL);
  else fprintf(stderr, "%s\n", msg);
}

#endif
