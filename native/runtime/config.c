#include <stdarg.h>
#include <string.h>

#include "runtime.h"

json_object *cfg_get(json_object *o, const char *key) {
  json_object *v = NULL;
  if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v)) return NULL;
  return v; /* NULL for JSON null too */
}

int cfg_fail(struct velo_err *e, const char *where, const char *key, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return velo_fail(e, 0, "config.json: %s%s%s: %s", where ? where : "", where && *where && key ? "." : "", key ? key : "", what);
}

int cfg_only_keys(json_object *o, const char *where, const char *const *allowed, struct velo_err *e) {
  if (!o) return 0;
  if (!json_object_is_type(o, json_type_object)) return cfg_fail(e, where, NULL, "expected an object");
  json_object_object_foreach(o, key, val) {
    (void)val;
    bool ok = false;
    for (const char *const *a = allowed; *a; a++)
      if (!strcmp(*a, key)) ok = true;
    if (!ok) return cfg_fail(e, where, key, "not supported by velo-runtime");
  }
  return 0;
}

static int typed(json_object *o, const char *key, const char *where, json_type t, const char *name, json_object **v, struct velo_err *e) {
  *v = cfg_get(o, key);
  if (!*v) return 1;
  if (!json_object_is_type(*v, t)) return cfg_fail(e, where, key, "expected %s", name);
  return 0;
}

int cfg_str(json_object *o, const char *key, const char *where, const char **out, struct velo_err *e) {
  json_object *v;
  int r = typed(o, key, where, json_type_string, "a string", &v, e);
  if (r == 0) {
    *out = json_object_get_string(v);
    if (strlen(*out) != (size_t)json_object_get_string_len(v)) return cfg_fail(e, where, key, "contains a NUL character");
  }
  return r;
}

int cfg_bool(json_object *o, const char *key, const char *where, bool *out, struct velo_err *e) {
  json_object *v;
  int r = typed(o, key, where, json_type_boolean, "true or false", &v, e);
  if (r == 0) *out = json_object_get_boolean(v);
  return r;
}

int cfg_i64(json_object *o, const char *key, const char *where, int64_t *out, struct velo_err *e) {
  json_object *v;
  int r = typed(o, key, where, json_type_int, "an integer", &v, e);
  if (r != 0) return r;
  errno = 0;
  int64_t x = json_object_get_int64(v);
  if (errno == ERANGE || (x == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX))
    return cfg_fail(e, where, key, "out of range");
  *out = x;
  return 0;
}

int cfg_u64(json_object *o, const char *key, const char *where, uint64_t *out, struct velo_err *e) {
  json_object *v;
  int r = typed(o, key, where, json_type_int, "an integer", &v, e);
  if (r != 0) return r;
  /* json-c keeps the sign: a negative number is not a u64 */
  errno = 0;
  if (json_object_get_int64(v) < 0) return cfg_fail(e, where, key, "expected a non-negative integer");
  *out = json_object_get_uint64(v);
  return 0;
}

int cfg_obj(json_object *o, const char *key, const char *where, json_object **out, struct velo_err *e) {
  return typed(o, key, where, json_type_object, "an object", out, e);
}

int cfg_arr(json_object *o, const char *key, const char *where, json_object **out, struct velo_err *e) {
  return typed(o, key, where, json_type_array, "an array", out, e);
}
