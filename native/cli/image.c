#include "image.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

static char **string_array(json_object *arr, size_t *n) {
  *n = 0;
  if (!arr || !json_object_is_type(arr, json_type_array)) return calloc(1, sizeof(char *));
  size_t len = json_object_array_length(arr);
  char **out = calloc(len + 1, sizeof *out);
  if (!out) return NULL;
  for (size_t i = 0; i < len; i++) {
    json_object *s = json_object_array_get_idx(arr, i);
    if (!json_object_is_type(s, json_type_string)) continue;
    out[(*n)++] = strdup(json_object_get_string(s));
  }
  return out;
}

static char *opt_string(json_object *o, const char *key) {
  json_object *v;
  if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) return NULL;
  const char *s = json_object_get_string(v);
  return *s ? strdup(s) : NULL;
}

int front_image_load(const char *home, const char *name, struct front_image *img, struct velo_err *err) {
  memset(img, 0, sizeof *img);
  struct velo_store st;
  if (velo_store_open(&st, home, err) < 0) return -1;
  int found = velo_image_get(&st, name, &img->json, err);
  velo_store_close(&st);
  if (found <= 0) return found;
  json_object *root = json_tokener_parse(img->json);
  json_object *layers = NULL, *config = NULL, *env = NULL;
  if (!root || !json_object_object_get_ex(root, "layers", &layers) || !json_object_is_type(layers, json_type_array)) {
    if (root) json_object_put(root);
    front_image_free(img);
    return velo_fail(err, 0, "image %s: damaged record in the manifest database", name);
  }
  img->name = strdup(name);
  img->source = opt_string(root, "source");
  img->layers = string_array(layers, &img->n_layers);
  if (json_object_object_get_ex(root, "config", &config) && json_object_is_type(config, json_type_object)) {
    json_object_object_get_ex(config, "env", &env);
    img->user = opt_string(config, "user");
    img->workdir = opt_string(config, "workingDir");
  }
  img->env = string_array(env, &img->n_env);
  json_object_put(root);
  if (!img->layers || !img->env || !img->name) {
    front_image_free(img);
    return velo_fail(err, ENOMEM, "image %s", name);
  }
  for (size_t i = 0; i < img->n_layers; i++)
    if (strlen(img->layers[i]) != 64 || strspn(img->layers[i], "0123456789abcdef") != 64) {
      front_image_free(img);
      return velo_fail(err, 0, "image %s: bad layer id in the manifest database", name);
    }
  return 1;
}

static void free_list(char **l, size_t n) {
  if (!l) return;
  for (size_t i = 0; i < n; i++) free(l[i]);
  free(l);
}

void front_image_free(struct front_image *img) {
  free(img->name);
  free_list(img->layers, img->n_layers);
  free_list(img->env, img->n_env);
  free(img->user);
  free(img->workdir);
  free(img->json);
  free(img->source);
  memset(img, 0, sizeof *img);
}
