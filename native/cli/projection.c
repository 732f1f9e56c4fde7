#include "projection.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "build.h"
#include "front.h"
#include "util.h"
#include "loadable.h"
#include "manifest.h"
#include "sha256.h"

extern char **environ;

static char *join2(const char *a, const char *b) {
  char *out;
  if (asprintf(&out, "%s%s%s", a, strcmp(a, "/") ? "/" : "", b) < 0) return NULL;
  return out;
}

int front_proj_root(const char *at, const struct front_image *img, char **root) {
  *root = NULL;
  cleanup_free char *abs = NULL;
  if (at) {
    abs = path_resolve(at);
  } else {
    /* defaultRoot: basename of the source with trailing slashes dropped, joined onto the cwd */
    if (!img->source) return FRONT_FALLBACK;
    cleanup_free char *src = strdup(img->source);
    if (!src) return FRONT_FALLBACK;
    size_t n = strlen(src);
    while (n > 0 && src[n - 1] == '/') src[--n] = 0;
    const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
    abs = path_resolve(*base ? base : "image");
  }
  if (!abs || !strcmp(abs, "/")) return FRONT_FALLBACK;
  /* the parent must exist; symlinks in it are resolved (fs.realpathSync), the last name is kept */
  char *slash = strrchr(abs, '/');
  *slash = 0;
  cleanup_free char *parent = realpath(*abs ? abs : "/", NULL);
  if (!parent) return FRONT_FALLBACK; /* Node reports which error (ENOENT, EACCES, ...) */
  *root = join2(parent, slash + 1);
  return *root ? 0 : FRONT_FALLBACK;
}

static bool writable_dir(const char *d) {
  struct stat st;
  return stat(d, &st) == 0 && S_ISDIR(st.st_mode) && access(d, W_OK) == 0;
}

/* cacheDir(): $VELO_CACHE_HOME, else the first of $XDG_CACHE_HOME/velo, ~/.cache/velo that is (or can be
 * made) a writable directory, else <store>/cache. A candidate Node would create is left to Node. */
static int cache_dir(const char *home, char **out) {
  *out = NULL;
  const char *v = getenv("VELO_CACHE_HOME");
  if (v && *v) {
    *out = path_resolve(v);
    return *out ? 0 : FRONT_FALLBACK;
  }
  const char *xdg = getenv("XDG_CACHE_HOME");
  const char *h = getenv("HOME"); /* os.homedir(): $HOME first */
  /* relative ones would be made relative to the cwd by mkdir; no $HOME: the passwd entry. Node's call. */
  if ((xdg && *xdg && xdg[0] != '/') || !h || h[0] != '/') return FRONT_FALLBACK;
  char *cands[2] = {NULL, NULL};
  if (xdg && *xdg && asprintf(&cands[0], "%s/velo", xdg) < 0) return FRONT_FALLBACK;
  if (asprintf(&cands[1], "%s/.cache/velo", h) < 0) {
    free(cands[0]);
    return FRONT_FALLBACK;
  }
  int rc = 1; /* 1 = no candidate yet */
  for (int i = 0; i < 2 && rc == 1; i++) {
    if (!cands[i]) continue;
    cleanup_free char *c = path_resolve(cands[i]);
    struct stat st;
    int r = c ? stat(c, &st) : -1;
    if (!c || (r < 0 && errno == ENOENT)) rc = FRONT_FALLBACK; /* mkdirSync would create it */
    else if (r == 0 && S_ISDIR(st.st_mode) && access(c, W_OK) == 0) *out = c, c = NULL, rc = 0;
  }
  free(cands[0]);
  free(cands[1]);
  if (rc == 1) {
    *out = join2(home, "cache");
    rc = *out ? 0 : FRONT_FALLBACK;
  }
  return rc;
}

/* phantomSkel(): <cache>/phantom/<first 24 hex of sha256(root \0 layers-top-first joined by ",")> */
static int phantom_skel(const char *home, const char *root, const struct front_image *img, char **skel) {
  cleanup_free char *cache = NULL;
  if (cache_dir(home, &cache) < 0) return FRONT_FALLBACK;
  struct sha256 s;
  uint8_t d[32];
  sha256_init(&s);
  sha256_update(&s, root, strlen(root));
  sha256_update(&s, "", 1);
  for (size_t i = img->n_layers; i-- > 0;) {
    sha256_update(&s, img->layers[i], strlen(img->layers[i]));
    if (i) sha256_update(&s, ",", 1);
  }
  sha256_final(&s, d);
  char id[25];
  for (int i = 0; i < 12; i++) snprintf(id + 2 * i, 3, "%02x", d[i]);
  if (asprintf(skel, "%s/phantom/%s", cache, id) < 0) {
    *skel = NULL;
    return FRONT_FALLBACK;
  }
  /* prepareProjection makes the parent; when it is missing, Node does */
  cleanup_free char *parent = join2(cache, "phantom");
  return parent && writable_dir(parent) ? 0 : FRONT_FALLBACK;
}

/* isReadOnlyStore() (src/lib/store-access.ts): this user may not write the store's manifest database (or, when
 * there is none yet, the store dir) */
static bool denied(const char *p, int mode) { return access(p, mode) < 0 && (errno == EACCES || errno == EROFS || errno == EPERM); }
static bool store_read_only(const char *home) {
  char db[PATH_MAX];
  snprintf(db, sizeof db, "%s/db/velo.lmdb", home);
  if (access(db, F_OK) == 0) return denied(db, W_OK);
  return denied(home, W_OK);
}

/* getUserHold() (src/store/holds.ts): this user's hold file <home>/holds/<uid>-<sha256(key), 32 hex>.json, a
 * regular file of this uid of at most 1 MiB, not followed if a symlink; its JSON, malloc'd, or NULL */
static char *user_hold(const char *home, const char *key) {
  struct sha256 s;
  uint8_t d[32];
  sha256_init(&s);
  sha256_update(&s, key, strlen(key));
  sha256_final(&s, d);
  char path[PATH_MAX];
  int n = snprintf(path, sizeof path, "%s/holds/%u-", home, (unsigned)getuid());
  for (int i = 0; i < 16 && n > 0 && (size_t)n + 3 < sizeof path; i++) n += snprintf(path + n, sizeof path - (size_t)n, "%02x", d[i]);
  if (n < 0 || (size_t)n + 6 >= sizeof path) return NULL;
  strcat(path, ".json");
  cleanup_fd int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() || st.st_size > (1 << 20)) return NULL;
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) return NULL;
  size_t got = 0;
  ssize_t r;
  while (got < (size_t)st.st_size && (r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got)) > 0) got += (size_t)r;
  buf[got] = 0;
  return buf;
}

/* The gc hold "projection:<skel>" exists and names exactly the image's layers (bottom first)? In LMDB, or, on
 * a store this user may only read, in this user's hold file. */
static bool held(const char *home, const char *skel, const struct front_image *img) {
  cleanup_free char *key = NULL, *json = NULL;
  if (asprintf(&key, "projection:%s", skel) < 0) return false;
  bool file = store_read_only(home);
  if (file) {
    if (!(json = user_hold(home, key))) return false;
  } else {
    struct velo_store st;
    struct velo_err err;
    if (velo_store_open(&st, home, &err) < 0) return false;
    int found = velo_record_get(&st, "holds", key, &json, &err);
    velo_store_close(&st);
    if (found != 1) return false;
  }
  json_object *root = json_tokener_parse(json), *layers, *v;
  bool ok = root && json_object_object_get_ex(root, "layers", &layers) && json_object_is_type(layers, json_type_array) &&
            json_object_array_length(layers) == img->n_layers;
  /* a hold file counts only if it is a whole hold record of this holder (parse() in holds.ts) */
  if (ok && file)
    ok = json_object_object_get_ex(root, "holder", &v) && json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), key) &&
         json_object_object_get_ex(root, "createdAt", &v) && json_object_is_type(v, json_type_string);
  for (size_t i = 0; ok && i < img->n_layers; i++) {
    json_object *l = json_object_array_get_idx(layers, i);
    ok = json_object_is_type(l, json_type_string) && !strcmp(json_object_get_string(l), img->layers[i]);
  }
  if (root) json_object_put(root);
  return ok;
}

/* velo-project's "fresh" test: SKEL (not a symlink) carries the stamp of these layers (build.c's definition). */
static bool fresh(const char *skel, const struct front_image *img) {
  const char *top_first[img->n_layers];
  for (size_t i = 0; i < img->n_layers; i++) top_first[i] = img->layers[img->n_layers - 1 - i];
  char want[VELO_STAMP_LEN], have[256];
  velo_project_stamp(top_first, (int)img->n_layers, want);
  cleanup_fd int fd = open(skel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = fgetxattr(fd, "user.velo.image", have, sizeof have - 1);
  return n > 0 && (size_t)n == strlen(want) && !memcmp(have, want, (size_t)n);
}

int front_proj_ready(const char *home, const struct front_image *img, const char *root, bool phantom, struct front_proj *p) {
  memset(p, 0, sizeof *p);
  p->phantom = phantom;
  p->root = strdup(root);
  if (!p->root) return FRONT_FALLBACK;
  if (phantom) {
    if (phantom_skel(home, root, img, &p->skel) < 0) goto fallback;
  } else if (!(p->skel = strdup(root))) {
    goto fallback;
  }
  if (img->n_layers == 0 || !held(home, p->skel, img)) goto fallback;
  return fresh(p->skel, img) ? 0 : 1;
fallback:
  front_proj_free(p);
  return FRONT_FALLBACK;
}

void front_proj_free(struct front_proj *p) {
  free(p->root);
  free(p->skel);
  memset(p, 0, sizeof *p);
}

static bool is_var(const char *kv, const char *name) {
  size_t n = strlen(name);
  return !strncmp(kv, name, n) && kv[n] == '=';
}

static char *kv(const char *k, const char *v) {
  char *out;
  return asprintf(&out, "%s=%s", k, v) < 0 ? NULL : out;
}

char **front_proj_env(const char *pkgroot, const char *home, const char *image, const struct front_proj *p) {
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 8, sizeof *env);
  cleanup_free char *shim = NULL, *cas = NULL, *pre = NULL;
  if (!env || asprintf(&shim, "%s/native/build/libvelo-shim.so", pkgroot) < 0 || asprintf(&cas, "%s/cas/blake3", home) < 0) return NULL;
  /* LD_PRELOAD: the shim first, then what was there (split on ':' and ' ', empties and the shim dropped) */
  const char *old = getenv("LD_PRELOAD");
  size_t cap = strlen(shim) + (old ? strlen(old) : 0) + 2;
  if (!(pre = malloc(cap))) return NULL;
  strcpy(pre, shim);
  if (old) {
    const char *s = old;
    while (*s) {
      size_t l = strcspn(s, ": ");
      if (l && !(l == strlen(shim) && !strncmp(s, shim, l))) {
        strcat(pre, ":");
        strncat(pre, s, l);
      }
      s += l;
      if (*s) s++;
    }
  }
  const char *uv = getenv("UV_USE_IO_URING");
  struct {
    const char *name, *value;
    bool done;
  } set[] = {
      {"LD_PRELOAD", pre, false},
      {"VELO_SHIM_CAS", cas, false},
      {"VELO_SHIM_IMAGE", image, false},
      {"UV_USE_IO_URING", uv ? uv : "0", false},
      {"VELO_SHIM_PHANTOM_ROOT", p->phantom ? p->root : NULL, false},
      {"VELO_SHIM_PHANTOM_SKEL", p->phantom ? p->skel : NULL, false},
  };
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    const char *e = environ[i];
    if (!strchr(e, '=')) continue;
    bool dup = false; /* Node's process.env keeps one value per name: the first */
    for (size_t j = 0; j < m && !dup; j++) {
      size_t kl = (size_t)(strchr(env[j], '=') - env[j]);
      dup = !strncmp(env[j], e, kl + 1);
    }
    if (dup) continue;
    char *out = (char *)e;
    for (size_t k = 0; k < 4; k++)
      if (is_var(e, set[k].name)) {
        out = kv(set[k].name, set[k].value); /* spread keeps an existing key where it was */
        set[k].done = true;
      }
    /* the phantom variables are deleted, then re-added at the end */
    if (is_var(e, "VELO_SHIM_PHANTOM_ROOT") || is_var(e, "VELO_SHIM_PHANTOM_SKEL")) continue;
    if (!out) return NULL;
    env[m++] = out;
  }
  for (size_t k = 0; k < 6; k++) {
    if (set[k].done || !set[k].value) continue;
    if (!(env[m++] = kv(set[k].name, set[k].value))) return NULL;
  }
  env[m] = NULL;
  return env;
}

int front_proj_build(bool json, const char *home, const struct front_image *img, const struct front_proj *p) {
  const char *top_first[VELO_MAX_LAYERS];
  if (img->n_layers > VELO_MAX_LAYERS) return front_error(json, "NATIVE", "too many layers", NULL);
  for (size_t i = 0; i < img->n_layers; i++) top_first[i] = img->layers[img->n_layers - 1 - i];
  struct velo_build_result r;
  struct velo_err err = {0};
  int rc = velo_project_build(home, p->skel, top_first, (int)img->n_layers, &r, &err);
  if (rc == 0) return 0;
  if (rc == VELO_BUILD_OTHER) {
    cleanup_free char *sugg = NULL;
    if (asprintf(&sugg, "choose another place with --at, or remove %s (or run `velo wake` there to keep it as plain files)", p->skel) < 0) sugg = NULL;
    return front_error(json, "STATE", err.msg, sugg);
  }
  if (err.errnum == EACCES || err.errnum == EPERM || err.errnum == EROFS) return front_error(json, "PERMISSION_DENIED", err.msg, FRONT_PERM_SUGGESTION);
  return front_error(json, "NATIVE", err.msg, NULL);
}
