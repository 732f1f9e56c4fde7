/* `velo sandbox ls` (also `sandbox list` and `velo ps`) without Node: listSandboxes of src/sandbox/tenant.ts and
 * the table of src/commands/sandbox/ls.ts, row for row, byte for byte. A host with a thousand tenants lists them
 * in a few milliseconds instead of Node's start-up plus a JSON parse per tenant.
 *
 * Every row is read and checked before anything is printed: a state Node would render differently (text that is
 * not plain ASCII, whose widths and 40-character cut Node counts in UTF-16 units; a field of an unexpected type;
 * a tenants dir it cannot read) sends the whole call to Node, which says what it says. A tenant whose state is
 * missing or not JSON is left out, as Node leaves it out. */
#include <dirent.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sysutil.h"
#include "args.h"
#include "front.h"
#include "state.h"
#include "util.h"

enum { F_HOME, F_JSON, N_FLAGS };
static const struct flag_def FLAGS[N_FLAGS] = {
    [F_HOME] = {"home", 0, true, false},
    [F_JSON] = {"json", 0, false, false},
};

struct row {
  const char *name, *image, *profile, *created, *started; /* started: NULL when absent */
  bool running;
  bool paused; /* running, its cgroup frozen: tenants/NAME/paused (rtcall.c), as src/sandbox/tenant.ts isPaused */
  long pid;
  json_object *argv; /* the main command's words; NULL: none */
  char *command;     /* the same joined by spaces */
  bool has_exit;
  long exit_code;
  const char *network, *ip; /* ip: NULL when not shown */
  char **ports;
  size_t n_ports;
};

/* text Node would count and print as we do: printable ASCII (control characters are escaped alike by both) */
static bool ascii(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p >= 0x80) return false;
  return true;
}

/* a JSON string with no NUL inside (json-c would cut it short) and ASCII only */
static bool plain_str(json_object *v, const char **out) {
  if (!json_object_is_type(v, json_type_string)) return false;
  const char *s = json_object_get_string(v);
  if ((size_t)json_object_get_string_len(v) != strlen(s) || !ascii(s)) return false;
  return *out = s, true;
}

/* a key that must be a plain string */
static bool req_str(json_object *o, const char *k, const char **out) {
  json_object *v;
  return json_object_object_get_ex(o, k, &v) && plain_str(v, out);
}

/* a key that is absent (NULL) or a plain string; null or another type is Node's to render */
static bool opt_str(json_object *o, const char *k, const char **out) {
  json_object *v;
  *out = NULL;
  return !json_object_object_get_ex(o, k, &v) || plain_str(v, out);
}

/* a whole number JSON.stringify prints as our %ld does */
static bool int_val(json_object *v, long *out) {
  if (!json_object_is_type(v, json_type_int)) return false;
  int64_t n = json_object_get_int64(v);
  if (n < -(1LL << 53) || n > (1LL << 53)) return false;
  return *out = (long)n, true;
}

/* a file of the tenant's dir parsed as JSON.parse would (NULL: absent, unreadable or not JSON: Node's catch) */
static json_object *tenant_json(const char *home, const char *name, const char *file) {
  char p[4400];
  snprintf(p, sizeof p, "%s/tenants/%s/%s", home, name, file);
  FILE *f = fopen(p, "re");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, len = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      char *n = realloc(buf, cap = cap ? cap * 2 : 8192);
      if (!n) break;
      buf = n;
    }
    size_t r = fread(buf + len, 1, cap - len - 1, f);
    len += r;
    if (r == 0) break;
  }
  fclose(f);
  if (!buf) return NULL;
  buf[len] = 0;
  json_object *o = strlen(buf) == len ? json_parse_strict(buf) : NULL;
  free(buf);
  return o;
}

/* isRunning of src/sandbox/state.ts: init alive, the same start time, not a zombie */
static bool init_running(long pid, const char *pid_start) {
  if (pid <= 0 || !pid_start || !*pid_start || pid > 4194304) return false;
  unsigned long long start;
  char st;
  if (proc_starttime((pid_t)pid, &start, &st) < 0) return false;
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", start);
  return !strcmp(buf, pid_start) && st != 'Z' && st != 'X';
}

/* One tenant's row. 1: a row, 0: left out (as Node leaves it out), -1: Node must serve the call. The json objects
 * the row points into are kept in *keep (freed by the caller once printed). */
static int read_row(const char *home, const char *name, struct row *r, json_object **keep) {
  memset(r, 0, sizeof *r);
  r->name = name;
  int err = 0;
  char *text = state_file_text(home, name, &err);
  if (!text) return 0;
  json_object *s = strlen(text) ? json_parse_strict(text) : NULL;
  free(text);
  if (!s) return 0;
  keep[0] = s;
  if (!json_object_is_type(s, json_type_object)) return -1;
  if (!req_str(s, "image", &r->image) || !req_str(s, "profile", &r->profile) || !req_str(s, "createdAt", &r->created) ||
      !opt_str(s, "startedAt", &r->started) || !req_str(s, "network", &r->network))
    return -1;
  json_object *v;
  const char *pid_start = NULL;
  long pid = 0;
  if (json_object_object_get_ex(s, "pid", &v) && !json_object_is_type(v, json_type_null) && !int_val(v, &pid)) return -1;
  if (json_object_object_get_ex(s, "pidStart", &v) && !json_object_is_type(v, json_type_null) && !plain_str(v, &pid_start)) return -1;
  r->running = init_running(pid, pid_start);
  r->pid = pid;
  if (r->running) {
    char pp[4400];
    snprintf(pp, sizeof pp, "%s/tenants/%s/paused", home, name);
    r->paused = access(pp, F_OK) == 0;
  }
  /* a workload's main command ("main": {argv: [...]}) */
  json_object *m = NULL;
  if (json_object_object_get_ex(s, "main", &m) && !json_object_is_type(m, json_type_null)) {
    json_object *argv;
    if (!json_object_is_type(m, json_type_object) || !json_object_object_get_ex(m, "argv", &argv) || !json_object_is_type(argv, json_type_array))
      return -1;
    size_t n = json_object_array_length(argv), total = 1;
    const char *w;
    for (size_t i = 0; i < n; i++) {
      if (!plain_str(json_object_array_get_idx(argv, i), &w)) return -1;
      total += strlen(w) + 1;
    }
    r->argv = argv;
    if (!(r->command = calloc(total, 1))) return -1;
    for (size_t i = 0; i < n; i++) {
      if (i) strcat(r->command, " ");
      strcat(r->command, json_object_get_string(json_object_array_get_idx(argv, i)));
    }
    /* how its last run ended, while stopped (workload.json, written by the monitor) */
    if (!r->running && (keep[1] = tenant_json(home, name, "workload.json")) && json_object_is_type(keep[1], json_type_object) &&
        json_object_object_get_ex(keep[1], "exitCode", &v)) {
      if (!int_val(v, &r->exit_code)) return -1;
      r->has_exit = true;
    }
  } else
    m = NULL;
  /* an address on a velo network, while running (network.json: {attached, ip, ...}) */
  if (r->running && strcmp(r->network, "loopback") && strcmp(r->network, "none") && (keep[2] = tenant_json(home, name, "network.json")) &&
      json_object_is_type(keep[2], json_type_object)) {
    json_object *att, *ip;
    bool attached = json_object_object_get_ex(keep[2], "attached", &att) && !json_object_is_type(att, json_type_null);
    if (attached && !json_object_is_type(att, json_type_boolean)) return -1;
    if (attached && json_object_get_boolean(att) && json_object_object_get_ex(keep[2], "ip", &ip) && !json_object_is_type(ip, json_type_null)) {
      if (!plain_str(ip, &r->ip)) return -1;
      if (!*r->ip) r->ip = NULL;
    }
  }
  /* published ports: [HOST_IP:]HOST_PORT->PORT/PROTO */
  json_object *ports;
  if (json_object_object_get_ex(s, "ports", &ports) && !json_object_is_type(ports, json_type_null)) {
    if (!json_object_is_type(ports, json_type_array)) return -1;
    size_t n = json_object_array_length(ports);
    r->ports = calloc(n + 1, sizeof *r->ports);
    if (!r->ports) return -1;
    for (size_t i = 0; i < n; i++) {
      json_object *p = json_object_array_get_idx(ports, i);
      const char *host_ip = NULL, *proto;
      long hp, cp;
      if (!json_object_is_type(p, json_type_object) || !opt_str(p, "hostIP", &host_ip) || !req_str(p, "protocol", &proto) ||
          !json_object_object_get_ex(p, "hostPort", &v) || !int_val(v, &hp) || !json_object_object_get_ex(p, "containerPort", &v) || !int_val(v, &cp))
        return -1;
      if (asprintf(&r->ports[i], "%s%s%ld->%ld/%s", host_ip && *host_ip ? host_ip : "", host_ip && *host_ip ? ":" : "", hp, cp, proto) < 0) return -1;
      r->n_ports++;
    }
  }
  return 1;
}

static void print_json(const struct row *rows, size_t n) {
  struct jw w = {.f = stdout};
  jw_begin_arr(&w);
  for (size_t i = 0; i < n; i++) {
    const struct row *r = &rows[i];
    char num[32];
    jw_begin_obj(&w);
    jw_key(&w, "name"), jw_str(&w, r->name);
    jw_key(&w, "status"), jw_str(&w, r->paused ? "paused" : r->running ? "running" : "stopped");
    jw_key(&w, "image"), jw_str(&w, r->image);
    jw_key(&w, "profile"), jw_str(&w, r->profile);
    jw_key(&w, "pid");
    snprintf(num, sizeof num, "%ld", r->pid);
    jw_raw(&w, r->running ? num : "null");
    jw_key(&w, "createdAt"), jw_str(&w, r->created);
    if (r->started) jw_key(&w, "startedAt"), jw_str(&w, r->started);
    if (r->argv) {
      jw_key(&w, "command");
      jw_begin_arr(&w);
      for (size_t k = 0; k < json_object_array_length(r->argv); k++) jw_str(&w, json_object_get_string(json_object_array_get_idx(r->argv, k)));
      jw_end_arr(&w);
    }
    if (r->has_exit) {
      snprintf(num, sizeof num, "%ld", r->exit_code);
      jw_key(&w, "exitCode"), jw_raw(&w, num);
    }
    jw_key(&w, "network"), jw_str(&w, r->network);
    if (r->ip) jw_key(&w, "ip"), jw_str(&w, r->ip);
    if (r->n_ports) {
      jw_key(&w, "ports");
      jw_begin_arr(&w);
      for (size_t k = 0; k < r->n_ports; k++) jw_str(&w, r->ports[k]);
      jw_end_arr(&w);
    }
    jw_end_obj(&w);
  }
  jw_end_arr(&w);
}

enum { COLS = 8 };

/* a formatted, malloc'd string (NULL when out of memory: the cell prints empty) */
static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

/* src/lib/table.ts: columns padded to their widest cell, two spaces apart, the last one not padded */
static void print_table(const struct row *rows, size_t n) {
  static const char *const HEAD[COLS] = {"NAME", "STATUS", "IMAGE", "COMMAND", "NETWORK", "PORTS", "PID", "CREATED"};
  char ***cells = calloc(n + 1, sizeof *cells);
  size_t width[COLS] = {0};
  if (!cells) return;
  for (size_t i = 0; i <= n; i++) {
    char **c = cells[i] = calloc(COLS, sizeof *c);
    if (!c) return;
    if (i == 0) {
      for (int k = 0; k < COLS; k++) c[k] = strdup(HEAD[k]);
    } else {
      const struct row *r = &rows[i - 1];
      c[0] = strdup(r->name);
      if (r->has_exit) c[1] = dupf("exited (%ld)", r->exit_code);
      else c[1] = strdup(r->paused ? "paused" : r->running ? "running" : "stopped");
      c[2] = strdup(r->image);
      if (r->command) {
        /* JSON.stringify(command.join(' ').slice(0, 40)) */
        char cut[41];
        snprintf(cut, sizeof cut, "%s", r->command);
        size_t len = 0;
        FILE *f = open_memstream(&c[3], &len);
        if (f) front_json_str(f, cut), fclose(f);
      } else
        c[3] = strdup("-");
      if (r->ip) c[4] = dupf("%s %s", r->network, r->ip);
      else c[4] = strdup(r->network);
      size_t plen = 1;
      for (size_t k = 0; k < r->n_ports; k++) plen += strlen(r->ports[k]) + 1;
      c[5] = calloc(plen + 1, 1);
      for (size_t k = 0; c[5] && k < r->n_ports; k++) {
        if (k) strcat(c[5], ",");
        strcat(c[5], r->ports[k]);
      }
      if (c[5] && !*c[5]) strcpy(c[5], "-");
      if (r->running) c[6] = dupf("%ld", r->pid);
      else c[6] = strdup("-");
      c[7] = strdup(r->created);
    }
    for (int k = 0; k < COLS; k++)
      if (c[k] && strlen(c[k]) > width[k]) width[k] = strlen(c[k]);
  }
  for (size_t i = 0; i <= n; i++) {
    for (int k = 0; k < COLS; k++) {
      const char *t = cells[i][k] ? cells[i][k] : "";
      if (k == COLS - 1) fputs(t, stdout);
      else printf("%-*s  ", (int)width[k], t);
      free(cells[i][k]);
    }
    fputc('\n', stdout);
    free(cells[i]);
  }
  free(cells);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Rows [from, to) of the listing: read_row per tenant into rows[i] (result in res[i]: 1 row, 0 left out, -1 Node),
 * the part of the work one thread does. Each row is its own (its files, its JSON objects), so threads share
 * nothing but the arrays' disjoint slices. */
struct ls_part {
  const char *home;
  char **names;
  struct row *rows;
  json_object **keep;
  int *res;
  size_t from, to;
};

static void *ls_part_run(void *arg) {
  struct ls_part *p = arg;
  for (size_t i = p->from; i < p->to; i++)
    p->res[i] = name_valid(p->names[i]) ? read_row(p->home, p->names[i], &p->rows[i], p->keep + 3 * i) : 0;
  return NULL;
}

int front_sandbox_ls(const struct front_ctx *ctx, int argc, char **argv) {
  (void)ctx;
  static struct parsed_args a;
  if (args_parse(FLAGS, N_FLAGS, argc, argv, &a) < 0 || a.n_args != 0) return FRONT_FALLBACK;
  char *home = front_home(args_one(&a, F_HOME));
  if (!home) return FRONT_FALLBACK;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/tenants", home);
  /* listTenantNames: every entry but dot-names, sorted by code unit (ASCII names: strcmp's order); no dir yet:
   * none; a dir this user may not read is Node's error */
  char **names = NULL;
  size_t n = 0, cap = 0;
  DIR *d = opendir(dir);
  if (!d && errno != ENOENT) return FRONT_FALLBACK;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (!ascii(e->d_name)) return FRONT_FALLBACK;
    if (n == cap) {
      char **nn = realloc(names, (cap = cap ? cap * 2 : 256) * sizeof *names);
      if (!nn) return FRONT_FALLBACK;
      names = nn;
    }
    if (!(names[n++] = strdup(e->d_name))) return FRONT_FALLBACK;
  }
  if (d) closedir(d);
  if (n) qsort(names, n, sizeof *names, by_name);
  struct row *rows = calloc(n + 1, sizeof *rows);
  json_object **keep = calloc(3 * n + 3, sizeof *keep);
  int *res = calloc(n + 1, sizeof *res);
  if (!rows || !keep || !res) return FRONT_FALLBACK;
  /* readState validates the name first: a dir with another name is left out. A long listing is read by two
   * threads (one per half; each tenant costs a few syscalls and a JSON parse: 1,000 tenants ~35 ms on one) */
  struct ls_part parts[2] = {{home, names, rows, keep, res, 0, n}, {home, names, rows, keep, res, n, n}};
  pthread_t th;
  bool two = n >= 64;
  if (two) parts[0].to = parts[1].from = n / 2;
  if (two && pthread_create(&th, NULL, ls_part_run, &parts[1]) != 0) two = false, parts[0].to = n;
  ls_part_run(&parts[0]);
  if (two) pthread_join(th, NULL);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    if (res[i] < 0) return FRONT_FALLBACK;
    if (res[i] > 0) rows[kept++] = rows[i];
  }
  if (a.json) print_json(rows, kept);
  else print_table(rows, kept);
  fflush(stdout);
  return 0;
}
