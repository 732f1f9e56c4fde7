#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"

char *utf8_lossy(const char *s) {
  /* as Node decodes a file as UTF-8 (WHATWG): each maximal invalid subpart becomes one U+FFFD */
  size_t n = strlen(s);
  char *out = malloc(n * 3 + 1);
  if (!out) return NULL;
  const unsigned char *p = (const unsigned char *)s;
  size_t o = 0;
  while (*p) {
    unsigned char c = *p;
    int need = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (need == 0) {
      out[o++] = (char)*p++;
      continue;
    }
    int got = 0;
    if (need > 0) {
      unsigned char lo = 0x80, hi = 0xbf;
      if (c == 0xe0) lo = 0xa0;
      else if (c == 0xed) hi = 0x9f;
      else if (c == 0xf0) lo = 0x90;
      else if (c == 0xf4) hi = 0x8f;
      for (got = 0; got < need; got++) {
        unsigned char d = p[1 + got];
        if (d < lo || d > hi) break;
        lo = 0x80, hi = 0xbf;
      }
    }
    if (need > 0 && got == need) {
      memcpy(out + o, p, (size_t)need + 1);
      o += (size_t)need + 1;
      p += need + 1;
    } else {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
      p += 1 + (need > 0 ? got : 0);
    }
  }
  out[o] = 0;
  return out;
}

bool utf8_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    if (*p < 0x80) {
      p++;
      continue;
    }
    int n;
    uint32_t cp;
    if ((*p & 0xe0) == 0xc0) n = 1, cp = *p & 0x1f;
    else if ((*p & 0xf0) == 0xe0) n = 2, cp = *p & 0x0f;
    else if ((*p & 0xf8) == 0xf0) n = 3, cp = *p & 0x07;
    else return false;
    for (int i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    p += n + 1;
  }
  return true;
}

bool name_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128 || strstr(s, "..")) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || !strchr("_.:-", c))) return false;
  }
  return true;
}

/* Number.prototype.toString (ECMA-262 Number::toString): the shortest digits that read back as v, written
 * out in full for 1e-7 <= |v| < 1e21 and in exponent form outside it. printf's %g switches to an exponent much
 * earlier (a memory limit of 1000t came out as 1.099511627776e+15, which the cgroup file refuses). */
void fmt_number(char *buf, size_t len, double v) {
  if (v == 0 || !isfinite(v)) {
    snprintf(buf, len, "%s", v == 0 ? "0" : isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
    return;
  }
  char e[40];
  int p = 1;
  for (; p <= 17; p++) {
    snprintf(e, sizeof e, "%.*e", p - 1, v);
    if (strtod(e, NULL) == v) break;
  }
  if (p > 17) p = 17;
  /* e: [-]d[.ddd]e[+-]XX → the digits without trailing zeros, and n (the decimal point's position) */
  const char *q = e;
  bool neg = *q == '-';
  if (neg) q++;
  char digits[24];
  int k = 0;
  for (; *q && *q != 'e'; q++)
    if (*q != '.') digits[k++] = *q;
  while (k > 1 && digits[k - 1] == '0') k--;
  digits[k] = 0;
  int n = atoi(q + 1) + 1;
  size_t o = 0;
  char out[64];
  if (neg) out[o++] = '-';
  if (k <= n && n <= 21) {
    memcpy(out + o, digits, (size_t)k), o += (size_t)k;
    for (int i = k; i < n; i++) out[o++] = '0';
  } else if (0 < n && n <= 21) {
    memcpy(out + o, digits, (size_t)n), o += (size_t)n;
    out[o++] = '.';
    memcpy(out + o, digits + n, (size_t)(k - n)), o += (size_t)(k - n);
  } else if (-6 < n && n <= 0) {
    out[o++] = '0', out[o++] = '.';
    for (int i = 0; i < -n; i++) out[o++] = '0';
    memcpy(out + o, digits, (size_t)k), o += (size_t)k;
  } else {
    out[o++] = digits[0];
    if (k > 1) {
      out[o++] = '.';
      memcpy(out + o, digits + 1, (size_t)(k - 1)), o += (size_t)(k - 1);
    }
    o += (size_t)snprintf(out + o, sizeof out - o, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
  }
  out[o] = 0;
  snprintf(buf, len, "%s", out);
}

void iso_now(char *buf, size_t len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, ts.tv_nsec / 1000000);
}

double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double ms_since(double t) {
  /* whole nanoseconds, as Number(hrtime.bigint() difference) / 1e6 gives */
  return round((now_ms() - t) * 1e6) / 1e6;
}

bool front_mute;

int front_sys_error(bool json, int errnum, const char *what) {
  if (front_mute) return 1;
  char msg[1200];
  switch (errnum) {
  case ENOENT:
    snprintf(msg, sizeof msg, "%s: no such file or directory", what);
    return front_error(json, "NOT_FOUND", msg, NULL);
  case EACCES:
  case EPERM:
    snprintf(msg, sizeof msg, "%s: permission denied", what);
    return front_error(json, "PERMISSION_DENIED", msg, "run as root, or check the permissions of the path");
  case ENOSPC:
  case EDQUOT:
    snprintf(msg, sizeof msg, "%s: no space left on device", what);
    return front_error(json, "NO_SPACE", msg, "free space in the store (velo gc) or move it with --home / VELO_HOME");
  case ENOTDIR:
    snprintf(msg, sizeof msg, "%s: not a directory", what);
    return front_error(json, "NOT_A_DIRECTORY", msg, NULL);
  case EXDEV:
    snprintf(msg, sizeof msg, "%s: store and target are on different filesystems", what);
    return front_error(json, "CROSS_DEVICE", msg, "put VELO_HOME on the same filesystem, or (as root) use --backend fuse (before Linux 6.12 with --userns host)");
  case EIO:
    snprintf(msg, sizeof msg, "%s: I/O error", what);
    return front_error(json, "UNREADABLE", msg, NULL);
  default:
    /* Node's text here is libuv's ("EBUSY: resource busy or locked, rmdir '...'"); the code and exit code match */
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(errnum));
    return front_error(json, "INTERNAL", msg, NULL);
  }
}

/* ---- JSON writer ---------------------------------------------------------------------------------- */

static void indent(struct jw *w) {
  fputc('\n', w->f);
  for (int i = 0; i < w->depth; i++) fputs("  ", w->f);
}

/* before any value inside an array (keys handle their own) */
static void before_value(struct jw *w, bool in_array) {
  if (!in_array || w->depth == 0) return;
  if (!w->first[w->depth]) fputc(',', w->f);
  w->first[w->depth] = false;
  indent(w);
}

static bool in_array_flag[32];

static void open_(struct jw *w, char c, bool arr) {
  before_value(w, in_array_flag[w->depth]);
  fputc(c, w->f);
  w->depth++;
  w->first[w->depth] = true;
  in_array_flag[w->depth] = arr;
}

static void close_(struct jw *w, char c) {
  bool empty = w->first[w->depth];
  w->depth--;
  if (!empty) indent(w);
  fputc(c, w->f);
  if (w->depth == 0) fputc('\n', w->f);
}

void jw_begin_obj(struct jw *w) { open_(w, '{', false); }
void jw_end_obj(struct jw *w) { close_(w, '}'); }
void jw_begin_arr(struct jw *w) { open_(w, '[', true); }
void jw_end_arr(struct jw *w) { close_(w, ']'); }

void jw_key(struct jw *w, const char *key) {
  if (!w->first[w->depth]) fputc(',', w->f);
  w->first[w->depth] = false;
  indent(w);
  front_json_str(w->f, key);
  fputs(": ", w->f);
}

void jw_str(struct jw *w, const char *s) {
  before_value(w, in_array_flag[w->depth]);
  front_json_str(w->f, s);
}

void jw_num(struct jw *w, double v) {
  char b[64];
  fmt_number(b, sizeof b, v);
  jw_raw(w, b);
}

void jw_raw(struct jw *w, const char *text) {
  before_value(w, in_array_flag[w->depth]);
  fputs(text, w->f);
}

int write_file_atomic(int dirfd, const char *name, const char *data, size_t len) {
  char tmp[64];
  snprintf(tmp, sizeof tmp, ".state.%d.tmp", (int)getpid());
  int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      unlinkat(dirfd, tmp, 0);
      errno = e;
      return -1;
    }
    off += (size_t)w;
  }
  if (close(fd) < 0 || renameat(dirfd, tmp, dirfd, name) < 0) {
    int e = errno;
    unlinkat(dirfd, tmp, 0);
    errno = e;
    return -1;
  }
  return 0;
}

char *path_resolve(const char *p) {
  char *full;
  if (p[0] == '/') full = strdup(p);
  else {
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    if (asprintf(&full, "%s/%s", cwd, p) < 0) return NULL;
  }
  if (!full) return NULL;
  /* path.resolve: '.', '..' and repeated slashes go, no symlink is looked at, no trailing slash */
  char *out = malloc(strlen(full) + 2);
  if (!out) {
    free(full);
    return NULL;
  }
  size_t o = 0;
  char *save = NULL;
  for (char *c = strtok_r(full, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, ".")) continue;
    if (!strcmp(c, "..")) {
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
      continue;
    }
    out[o++] = '/';
    size_t n = strlen(c);
    memcpy(out + o, c, n);
    o += n;
  }
  if (o == 0) out[o++] = '/';
  out[o] = 0;
  free(full);
  return out;
}
