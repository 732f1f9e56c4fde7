#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/sysutil.h"
#include "util.h"

int strlist_push(struct strlist *l, const char *v) {
  char **n = realloc(l->v, (l->n + 2) * sizeof *n);
  if (!n) return -1;
  l->v = n;
  if (!(l->v[l->n] = strdup(v))) return -1;
  l->v[++l->n] = NULL;
  return 0;
}

static char *read_all_nofollow(int dirfd, const char *name, int *err) {
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
    *err = EINVAL;
    close(fd);
    return NULL;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (buf && got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  if (!buf || got != (size_t)st.st_size) {
    free(buf);
    *err = EIO;
    return NULL;
  }
  buf[got] = 0;
  return buf;
}

/* typed getters: false when the key is there with another type (or absent and required) */
static bool get_str(json_object *o, const char *k, char **out, bool required) {
  json_object *v;
  *out = NULL;
  if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null)) return !required;
  if (!json_object_is_type(v, json_type_string)) return false;
  const char *s = json_object_get_string(v);
  /* nothing with NUL (json-c would cut it); read as Node reads the file: invalid UTF-8 becomes U+FFFD */
  if ((size_t)json_object_get_string_len(v) != strlen(s)) return false;
  return (*out = utf8_lossy(s)) != NULL;
}

/* an optional key that is absent or true (state.ts writes it only when true) */
static bool get_true(json_object *o, const char *k, bool *out) {
  json_object *v;
  *out = false;
  if (!json_object_object_get_ex(o, k, &v)) return true;
  if (!json_object_is_type(v, json_type_boolean) || !json_object_get_boolean(v)) return false;
  return (*out = true);
}

static bool get_list(json_object *o, const char *k, struct strlist *out) {
  json_object *v;
  memset(out, 0, sizeof *out);
  if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_array)) return false;
  out->v = calloc(1, sizeof(char *));
  if (!out->v) return false;
  for (size_t i = 0; i < json_object_array_length(v); i++) {
    json_object *e = json_object_array_get_idx(v, i);
    if (!json_object_is_type(e, json_type_string)) return false;
    const char *s = json_object_get_string(e);
    if ((size_t)json_object_get_string_len(e) != strlen(s)) return false;
    char *d = utf8_lossy(s);
    int r = d ? strlist_push(out, d) : -1;
    free(d);
    if (r < 0) return false;
  }
  return true;
}

int state_read(const char *home, const char *name, struct tstate *s) {
  memset(s, 0, sizeof *s);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/tenants/%s", home, name);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == ENOENT) return STATE_NOENT;
    return STATE_UNSERVED;
  }
  int err = 0;
  char *text = read_all_nofollow(dfd, "state.json", &err);
  close(dfd);
  if (!text) return err == ENOENT ? STATE_HALF : STATE_UNSERVED;
  int r = state_parse(text, name, s);
  free(text);
  return r;
}

json_object *json_parse_strict(const char *text) {
  json_tokener *tok = json_tokener_new();
  if (!tok) return NULL;
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  size_t tlen = strlen(text);
  json_object *o = json_tokener_parse_ex(tok, text, (int)tlen);
  /* JSON.parse: one value, then only whitespace */
  if (o && json_tokener_get_error(tok) == json_tokener_success) {
    for (size_t i = json_tokener_get_parse_end(tok); i < tlen; i++)
      if (!strchr(" \t\r\n", text[i])) {
        json_object_put(o);
        o = NULL;
        break;
      }
  } else if (o) {
    json_object_put(o);
    o = NULL;
  }
  json_tokener_free(tok);
  return o;
}

char *state_file_text(const char *home, const char *name, int *err) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/tenants/%s", home, name);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return *err = errno, NULL;
  char *text = read_all_nofollow(dfd, "state.json", err);
  close(dfd);
  return text;
}

int state_parse(const char *text, const char *name, struct tstate *s) {
  memset(s, 0, sizeof *s);
  json_object *o = json_parse_strict(text);
  if (!o || !json_object_is_type(o, json_type_object)) {
    if (o) json_object_put(o);
    return STATE_UNSERVED;
  }
  bool ok = get_str(o, "name", &s->name, true) && get_str(o, "image", &s->image, true) && get_list(o, "layers", &s->layers) &&
            get_list(o, "lowers", &s->lowers) && get_str(o, "backend", &s->backend, false) && get_str(o, "profile", &s->profile, true) &&
            get_str(o, "hostname", &s->hostname, true) && get_str(o, "network", &s->network, true) && get_list(o, "env", &s->env) &&
            get_list(o, "capabilities", &s->caps) && get_str(o, "seccomp", &s->seccomp, true) && get_str(o, "user", &s->user, false) &&
            get_str(o, "workdir", &s->workdir, true) && get_list(o, "cgroups", &s->cgroups) && get_true(o, "userns", &s->userns) &&
            get_str(o, "pidStart", &s->pid_start, false) && strcmp(s->name, name) == 0;
  /* the bundle needs the binds and limits too (oci.c) */
  json_object *mounts, *limits;
  if (ok && json_object_object_get_ex(o, "mounts", &mounts) && json_object_is_type(mounts, json_type_array)) {
    size_t n = json_object_array_length(mounts);
    s->mounts = calloc(n + 1, sizeof *s->mounts);
    ok = s->mounts != NULL;
    for (size_t i = 0; ok && i < n; i++) {
      json_object *m = json_object_array_get_idx(mounts, i), *ro;
      ok = get_str(m, "source", &s->mounts[i].source, true) && get_str(m, "target", &s->mounts[i].target, true) &&
           json_object_object_get_ex(m, "readonly", &ro) && json_object_is_type(ro, json_type_boolean) &&
           get_str(m, "volume", &s->mounts[i].volume, false);
      if (ok) s->mounts[i].readonly = json_object_get_boolean(ro);
    }
    s->n_mounts = ok ? n : 0;
  } else ok = false;
  json_object *tmpfs;
  if (ok && json_object_object_get_ex(o, "tmpfs", &tmpfs)) {
    if (!json_object_is_type(tmpfs, json_type_array)) ok = false;
    size_t n = ok ? json_object_array_length(tmpfs) : 0;
    s->tmpfs = ok ? calloc(n + 1, sizeof *s->tmpfs) : NULL;
    ok = ok && s->tmpfs != NULL;
    for (size_t i = 0; ok && i < n; i++) {
      json_object *t = json_object_array_get_idx(tmpfs, i);
      ok = get_str(t, "target", &s->tmpfs[i].target, true) && get_list(t, "options", &s->tmpfs[i].options);
    }
    s->n_tmpfs = ok ? n : 0;
  }
  ok = ok && get_true(o, "readonlyRoot", &s->readonly_root) && get_true(o, "autoRemove", &s->auto_remove);
  if (ok && json_object_object_get_ex(o, "limits", &limits) && json_object_is_type(limits, json_type_object)) {
    json_object_object_foreach(limits, key, val) {
      static const char *const KNOWN[] = {"memory", "pids", "cpus", "ioReadBps", "ioWriteBps", "disk"};
      const char *k = NULL;
      for (size_t i = 0; i < sizeof KNOWN / sizeof *KNOWN; i++)
        if (!strcmp(key, KNOWN[i])) k = KNOWN[i];
      if (!k || s->n_limits >= TLIMITS_MAX || !(json_object_is_type(val, json_type_int) || json_object_is_type(val, json_type_double))) {
        ok = false;
        break;
      }
      s->limits[s->n_limits++] = (struct tlimit){k, json_object_get_double(val)};
    }
  } else ok = false;
  json_object *pid;
  if (ok && json_object_object_get_ex(o, "pid", &pid) && !json_object_is_type(pid, json_type_null)) {
    if (!json_object_is_type(pid, json_type_int)) ok = false;
    else {
      s->has_pid = true;
      s->pid = (long)json_object_get_int64(pid);
    }
  }
  json_object_put(o);
  return ok ? STATE_OK : STATE_UNSERVED;
}

bool state_running(const struct tstate *s) {
  if (!s->has_pid || s->pid <= 0 || !s->pid_start || !*s->pid_start) return false;
  unsigned long long start;
  char st;
  if (s->pid > 4194304 || proc_starttime((pid_t)s->pid, &start, &st) < 0) return false;
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", start);
  return !strcmp(buf, s->pid_start) && st != 'Z' && st != 'X';
}

static void list(struct jw *w, const char *key, const struct strlist *l) {
  jw_key(w, key);
  jw_begin_arr(w);
  for (size_t i = 0; i < l->n; i++) jw_str(w, l->v[i]);
  jw_end_arr(w);
}

/* an absent value (NULL) is left out, as JSON.stringify leaves out undefined */
static void str(struct jw *w, const char *key, const char *v) {
  if (!v) return;
  jw_key(w, key);
  jw_str(w, v);
}

int state_format(const struct tstate *s, char **out, size_t *out_len) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return -1;
  struct jw w = {.f = f};
  jw_begin_obj(&w);
  jw_key(&w, "version");
  jw_raw(&w, "1");
  str(&w, "name", s->name);
  str(&w, "image", s->image);
  list(&w, "layers", &s->layers);
  list(&w, "lowers", &s->lowers);
  if (s->backend) str(&w, "backend", s->backend);
  str(&w, "profile", s->profile);
  str(&w, "hostname", s->hostname);
  str(&w, "network", s->network);
  if (s->n_ports) {
    jw_key(&w, "ports");
    jw_begin_arr(&w);
    for (size_t i = 0; i < s->n_ports; i++) {
      char n[16];
      jw_begin_obj(&w);
      if (s->ports[i].host_ip) str(&w, "hostIP", s->ports[i].host_ip);
      jw_key(&w, "hostPort");
      snprintf(n, sizeof n, "%d", s->ports[i].host_port);
      jw_raw(&w, n);
      jw_key(&w, "containerPort");
      snprintf(n, sizeof n, "%d", s->ports[i].container_port);
      jw_raw(&w, n);
      str(&w, "protocol", s->ports[i].protocol);
      jw_end_obj(&w);
    }
    jw_end_arr(&w);
  }
  list(&w, "env", &s->env);
  jw_key(&w, "mounts");
  jw_begin_arr(&w);
  for (size_t i = 0; i < s->n_mounts; i++) {
    jw_begin_obj(&w);
    str(&w, "source", s->mounts[i].source);
    str(&w, "target", s->mounts[i].target);
    jw_key(&w, "readonly");
    jw_raw(&w, s->mounts[i].readonly ? "true" : "false");
    if (s->mounts[i].volume) str(&w, "volume", s->mounts[i].volume);
    jw_end_obj(&w);
  }
  jw_end_arr(&w);
  if (s->n_tmpfs) {
    jw_key(&w, "tmpfs");
    jw_begin_arr(&w);
    for (size_t i = 0; i < s->n_tmpfs; i++) {
      jw_begin_obj(&w);
      str(&w, "target", s->tmpfs[i].target);
      list(&w, "options", &s->tmpfs[i].options);
      jw_end_obj(&w);
    }
    jw_end_arr(&w);
  }
  if (s->readonly_root) {
    jw_key(&w, "readonlyRoot");
    jw_raw(&w, "true");
  }
  jw_key(&w, "limits");
  jw_begin_obj(&w);
  for (int i = 0; i < s->n_limits; i++) {
    jw_key(&w, s->limits[i].key);
    jw_num(&w, s->limits[i].value);
  }
  jw_end_obj(&w);
  list(&w, "capabilities", &s->caps);
  str(&w, "seccomp", s->seccomp);
  if (s->userns) {
    jw_key(&w, "userns");
    jw_raw(&w, "true");
  }
  if (s->user) str(&w, "user", s->user);
  str(&w, "workdir", s->workdir);
  list(&w, "cgroups", &s->cgroups);
  str(&w, "createdAt", s->created_at);
  if (s->has_main) {
    char n[32];
    jw_key(&w, "main");
    jw_begin_obj(&w);
    list(&w, "argv", &s->main_argv);
    jw_key(&w, "uid");
    jw_raw(&w, "0");
    jw_key(&w, "gid");
    jw_raw(&w, "0");
    if (s->main_workdir) str(&w, "workdir", s->main_workdir);
    jw_key(&w, "env");
    jw_begin_arr(&w);
    jw_end_arr(&w);
    jw_end_obj(&w);
    jw_key(&w, "logs");
    jw_begin_obj(&w);
    jw_key(&w, "maxSize");
    snprintf(n, sizeof n, "%lld", s->log_max_size);
    jw_raw(&w, n);
    jw_key(&w, "maxFiles");
    snprintf(n, sizeof n, "%d", s->log_max_files);
    jw_raw(&w, n);
    jw_end_obj(&w);
    if (s->auto_remove) {
      jw_key(&w, "autoRemove");
      jw_raw(&w, "true");
    }
  }
  if (s->has_pid) {
    char b[32];
    snprintf(b, sizeof b, "%ld", s->pid);
    jw_key(&w, "pid");
    jw_raw(&w, b);
    str(&w, "pidStart", s->pid_start);
    str(&w, "startedAt", s->started_at);
  }
  jw_end_obj(&w);
  if (fclose(f) != 0) {
    free(buf);
    return -1;
  }
  *out = buf;
  *out_len = len;
  return 0;
}

int state_write(const char *home, const struct tstate *s) {
  char *buf = NULL;
  size_t len = 0;
  if (state_format(s, &buf, &len) < 0) return -1;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/tenants/%s", home, s->name);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    free(buf);
    return -1;
  }
  int r = write_file_atomic(dfd, "state.json", buf, len);
  int e = errno;
  close(dfd);
  free(buf);
  errno = e;
  return r;
}

bool state_limit(const struct tstate *s, const char *key, double *v) {
  for (int i = 0; i < s->n_limits; i++)
    if (!strcmp(s->limits[i].key, key)) return *v = s->limits[i].value, true;
  return false;
}
