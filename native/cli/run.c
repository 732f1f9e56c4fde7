/* `velo run` without Node: src/commands/run.ts + src/run/run.ts for the usual call, where the image's
 * projection already exists and is held (every run after the first). The program is exec'd in place of
 * velo, so its exit code and signals are velo's with no forwarding process in between. Everything else
 * (a first run that builds the skeleton, --help, other flag forms, errors this does not render) goes to
 * Node before anything has been changed. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elfdeps.h"
#include "front.h"
#include "util.h"
#include "image.h"
#include "loadable.h"
#include "ph.h"
#include "projection.h"
#include "real.h"

struct run_flags {
  const char *image, *at, *home;
  bool phantom, json;
  char **cmd; /* after "--" */
  int ncmd;
};

/* The flag forms oclif accepts that the Node command defines: --image X, --image=X (same for --at and
 * --home), --phantom, --json, then "--" and the command. Anything else (another form, a repeat, -h, a
 * command without "--") is oclif's to parse or to reject. */
static int parse(int argc, char **argv, struct run_flags *f) {
  memset(f, 0, sizeof *f);
  static const char *const valued[] = {"image", "at", "home"};
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      f->cmd = argv + i + 1;
      f->ncmd = argc - i - 1;
      return 0;
    }
    if (strncmp(a, "--", 2)) return FRONT_FALLBACK;
    const char *name = a + 2;
    if (!strcmp(name, "phantom") || !strcmp(name, "json")) {
      bool *b = name[0] == 'p' ? &f->phantom : &f->json;
      if (*b) return FRONT_FALLBACK;
      *b = true;
      continue;
    }
    const char **slot = NULL;
    size_t nl = strcspn(name, "=");
    for (size_t k = 0; k < 3; k++)
      if (strlen(valued[k]) == nl && !strncmp(name, valued[k], nl))
        slot = k == 0 ? &f->image : k == 1 ? &f->at : &f->home;
    if (!slot || *slot) return FRONT_FALLBACK;
    const char *v;
    if (name[nl] == '=') v = name + nl + 1;
    else if (i + 1 < argc) v = argv[++i];
    else return FRONT_FALLBACK;
    if (!*v || v[0] == '-') return FRONT_FALLBACK; /* oclif's reading of these is its own */
    *slot = v;
  }
  return FRONT_FALLBACK; /* no "--" */
}

struct inception {
  char *image, *root;
  bool phantom;
};

/* findInception(): the nearest .velo/state.json from the cwd up that parses as JSON. 1 found, 0 none,
 * FRONT_FALLBACK when what it holds is not what Node's code expects. */
static int find_inception(struct inception *inc) {
  memset(inc, 0, sizeof inc[0]);
  cleanup_free char *d = path_resolve(".");
  if (!d) return FRONT_FALLBACK;
  for (;;) {
    char f[PATH_MAX];
    snprintf(f, sizeof f, "%s%s.velo/state.json", d, strcmp(d, "/") ? "/" : "");
    FILE *fp = fopen(f, "re");
    if (fp) {
      json_tokener *tok = json_tokener_new();
      json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
      char buf[8192];
      size_t n;
      json_object *o = NULL;
      enum json_tokener_error e = json_tokener_continue;
      while (e == json_tokener_continue && (n = fread(buf, 1, sizeof buf, fp)) > 0) {
        o = json_tokener_parse_ex(tok, buf, (int)n);
        e = json_tokener_get_error(tok);
      }
      /* anything after the value (but whitespace) makes JSON.parse throw: treat as unreadable */
      bool ok = e == json_tokener_success && o;
      if (ok) {
        size_t off = json_tokener_get_parse_end(tok);
        for (; off < n; off++)
          if (!strchr(" \t\r\n", buf[off])) ok = false;
        if (ok && fread(buf, 1, 1, fp) > 0) ok = false;
      }
      json_tokener_free(tok);
      fclose(fp);
      if (ok) {
        json_object *img, *root, *mode;
        int rc = FRONT_FALLBACK;
        if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "image", &img) &&
            json_object_is_type(img, json_type_string) && json_object_object_get_ex(o, "root", &root) &&
            json_object_is_type(root, json_type_string) && json_object_object_get_ex(o, "mode", &mode) &&
            json_object_is_type(mode, json_type_string) && *json_object_get_string(img) && *json_object_get_string(root)) {
          const char *m = json_object_get_string(mode);
          /* Node reads the file as UTF-8 (invalid bytes become U+FFFD) and keeps a NUL inside a string: a
           * string either would change is Node's to read */
          bool same_text = utf8_valid(json_object_get_string(img)) && utf8_valid(json_object_get_string(root)) &&
                           (size_t)json_object_get_string_len(img) == strlen(json_object_get_string(img)) &&
                           (size_t)json_object_get_string_len(root) == strlen(json_object_get_string(root));
          if (same_text && (!strcmp(m, "solid") || !strcmp(m, "phantom"))) {
            inc->image = strdup(json_object_get_string(img));
            inc->root = strdup(json_object_get_string(root));
            inc->phantom = !strcmp(m, "phantom");
            rc = inc->image && inc->root ? 1 : FRONT_FALLBACK;
          }
        }
        json_object_put(o);
        return rc;
      }
      if (o) json_object_put(o);
    }
    if (!strcmp(d, "/")) return 0;
    char *s = strrchr(d, '/');
    if (s == d) s[1] = 0;
    else *s = 0;
  }
}

/* What the program inherits from Node's spawn() on the Node path, so both paths start it alike: libuv's
 * child resets signals 1–31 to their default action, unblocks all, makes stdio blocking; Node itself opened
 * /dev/null on a closed stdio fd and raised the soft open-files limit to the hard one at its start. */
static void as_node_spawns(void) {
  for (int fd = 0; fd <= 2; fd++) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 && errno == EBADF) {
      int n = open("/dev/null", O_RDWR);
      if (n >= 0 && n != fd) {
        dup2(n, fd);
        close(n);
      }
    } else if (fl >= 0 && (fl & O_NONBLOCK)) {
      fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  for (int s = 1; s < 32; s++)
    if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

int front_run(const struct front_ctx *ctx, int argc, char **argv) {
  struct run_flags f;
  if (parse(argc, argv, &f) < 0) return FRONT_FALLBACK;
  if (f.ncmd == 0) return front_error(f.json, "USAGE", "no command given", "velo run --image NAME -- CMD [ARGS...]");

  const char *image = f.image, *at = f.at;
  bool phantom = f.phantom;
  struct inception inc = {0};
  cleanup_free char *inc_image = NULL, *inc_root = NULL; /* freed however this returns */
  if (!image) {
    int r = find_inception(&inc);
    inc_image = inc.image;
    inc_root = inc.root;
    if (r < 0) return FRONT_FALLBACK;
    if (r == 0)
      return front_error(f.json, "USAGE", "no --image given and this directory is not in inception mode",
                         "velo run --image NAME -- CMD, or `velo inception --image NAME` first");
    image = inc.image;
    if (!at) at = inc.root;
    if (!f.phantom) phantom = inc.phantom;
  }

  cleanup_free char *home = front_home(f.home);
  if (!home) return FRONT_FALLBACK;
  snprintf(velo_cas, sizeof velo_cas, "%s/cas/blake3", home);
  /* a volume snapshot's image in a store that may hold compressed (cold) objects: only those images' objects go
   * cold (src/store/cold.ts); Node's run makes them plain first, the shim opens plain objects only */
  if (!strncmp(image, "volume:", 7)) {
    char mark[4200];
    snprintf(mark, sizeof mark, "%s/cold", home);
    if (access(mark, F_OK) == 0) return FRONT_FALLBACK;
  }

  /* assertLoadable comes before the image is looked at */
  cleanup_free char *file = NULL, *judged = NULL;
  int r = front_resolve_command(f.cmd[0], &file);
  if (r < 0) return FRONT_FALLBACK;
  if (r == 0) {
    cleanup_free char *msg = NULL;
    if (asprintf(&msg, "command not found: %s", f.cmd[0]) < 0) return FRONT_FALLBACK;
    return front_error(f.json, "NOT_FOUND", msg, "check the name and PATH");
  }
  enum loadable verdict;
  if (front_check_loadable(file, &verdict, &judged) < 0) return FRONT_FALLBACK;
  if (verdict != LOADABLE_OK) {
    cleanup_free char *msg = NULL;
    const char *what = verdict == LOADABLE_STATIC ? "is statically linked" : "is setuid/setgid (the kernel ignores LD_PRELOAD for it)";
    if (asprintf(&msg, "%s %s: the velo shim cannot be loaded into it, so it would read placeholders instead of the image's files", judged, what) < 0)
      return FRONT_FALLBACK;
    return front_error(f.json, "UNSUPPORTED", msg, "run it inside a sandbox (`velo sandbox`), or materialize the files first (`velo wake`)");
  }

  struct front_image img;
  struct velo_err err;
  r = front_image_load(home, image, &img, &err);
  if (r < 0) return FRONT_FALLBACK; /* no store yet (Node creates it), a damaged record: Node's errors */
  if (r == 0) {
    cleanup_free char *msg = NULL;
    size_t len;
    FILE *m = open_memstream(&msg, &len);
    if (!m) return FRONT_FALLBACK;
    fputs("no image named ", m);
    front_json_str(m, image);
    fclose(m);
    return front_error(f.json, "NOT_FOUND", msg,
                       "list images with `velo image ls`; create one with `velo ingest DIR --name NAME` or `velo image import`");
  }
  cleanup_free char *root = NULL;
  struct front_proj p;
  int ready;
  if (front_proj_root(at, &img, &root) < 0 || (ready = front_proj_ready(home, &img, root, phantom, &p)) < 0) {
    front_image_free(&img);
    return FRONT_FALLBACK;
  }
  /* from here on the call is ours: the first side effect is the skeleton build, if one is needed */
  if (ready == 1 && (r = front_proj_build(f.json, home, &img, &p)) != 0) {
    front_image_free(&img);
    front_proj_free(&p);
    return r;
  }
  front_image_free(&img);
  char **env = front_proj_env(ctx->pkgroot, home, image, &p);
  if (!env) return FRONT_FALLBACK;

  /* spawn(file, args, {argv0: cmd}) */
  char **args = calloc((size_t)f.ncmd + 1, sizeof *args);
  if (!args) return FRONT_FALLBACK;
  memcpy(args, f.cmd, (size_t)f.ncmd * sizeof *args);
  /* the kernel and ld.so read the program and its libraries without the shim: any that is a placeholder is
   * made real first, as the shim does for every exec inside the tree (velo-project prepare on the Node path) */
  velo_real_init();
  struct stat st;
  char real[PATH_MAX];
  struct velo_ph ph;
  if (stat(file, &st) == 0 && velo_ph_maybe(&st) && realpath(file, real) && velo_ph_get_path(real, 0, &ph)) velo_ph_materialize(real);
  velo_prepare_deps(file, NULL, getenv("LD_LIBRARY_PATH"));
  as_node_spawns();
  execve(file, args, env);
  /* ENOEXEC, EACCES, ...: Node runs the call again and reports it its own way. What was done here (a
   * skeleton built, a file made real) is what Node would have done, and it finds it done. */
  return FRONT_FALLBACK;
}
