#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "front.h"
#include "util.h"

/* RFC 3339 with ns, UTC: sorts as text, as the CRI log lines do */
static void now_ns(char *buf, size_t len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char d[32];
  strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%s.%09ldZ", d, ts.tv_nsec);
}

/* Rotation under an flock of events.lock: of two writers that both see the journal over the bound, one renames */
static void rotate_if_big(const char *home, const char *log) {
  struct stat st;
  if (stat(log, &st) < 0 || st.st_size < EVENTS_MAX_BYTES) return;
  char lockp[4400], old[4400];
  snprintf(lockp, sizeof lockp, "%s/events.lock", home);
  snprintf(old, sizeof old, "%s.1", log);
  int lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lfd < 0) return;
  if (flock(lfd, LOCK_EX) == 0 && stat(log, &st) == 0 && st.st_size >= EVENTS_MAX_BYTES) rename(log, old);
  close(lfd);
}

void event_emit(const char *home, const char *type, const char *action, const char *name, const char *const *attrs, int n_attrs) {
  char *line = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&line, &len);
  if (!f) return;
  char t[64];
  now_ns(t, sizeof t);
  /* compact JSON on one line (the strings escaped as JSON.stringify escapes them) */
  fputs("{\"time\":", f);
  front_json_str(f, t);
  fputs(",\"type\":", f);
  front_json_str(f, type);
  fputs(",\"action\":", f);
  front_json_str(f, action);
  fputs(",\"name\":", f);
  front_json_str(f, name);
  fputs(",\"attrs\":{", f);
  for (int i = 0; i < n_attrs; i++) {
    const char *eq = strchr(attrs[i], '=');
    if (!eq) continue;
    char *k = strndup(attrs[i], (size_t)(eq - attrs[i]));
    if (!k) continue;
    if (i) fputc(',', f);
    front_json_str(f, k);
    fputc(':', f);
    front_json_str(f, eq + 1);
    free(k);
  }
  fputs("}}\n", f);
  if (fclose(f) != 0) {
    free(line);
    return;
  }
  char log[4300];
  snprintf(log, sizeof log, "%s/events.log", home);
  rotate_if_big(home, log);
  int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    /* one write: a whole line or (failing) none; a short write is not retried (it would split the line) */
    ssize_t r;
    do r = write(fd, line, len);
    while (r < 0 && errno == EINTR);
    close(fd);
  }
  free(line);
}
