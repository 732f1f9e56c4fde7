/* velo-project: the on-disk side of a projection.
 *
 *   velo-project build HOME ROOT LAYER_TOP [LAYER ...]
 *       Make ROOT the placeholder skeleton of the image (layers top first): real directories and symlinks,
 *       a placeholder per regular file (ph.h), hard links as hard links, fifos (and devices as root).
 *       The merged view is read from LMDB by native/common's reader, one cursor walk per directory.
 *       ROOT carries the xattr user.velo.image = "v1:<digest of the layer ids>" once complete, so a later
 *       build of the same image is a single getxattr ("fresh"). An interrupted build ("b1:...") is resumed.
 *       Exit 3 when ROOT holds something else (a non-empty directory that is not this image's projection).
 *   velo-project wake HOME ROOT
 *       Replace every placeholder under ROOT with a real copy of its object and drop the marks: the tree
 *       is then an ordinary directory, usable without velo.
 *   velo-project probe HOME < NUL-separated paths
 *       For each path that is a placeholder, print "path\\0object-path\\0" (velo ingest reads through them).
 *   velo-project stamp ROOT
 *       Print ROOT's stamp (empty line if none).
 *   velo-project prepare HOME FILE
 *       Make FILE real if it is a placeholder, and every placeholder among the shared libraries ld.so will
 *       load for it ($LD_LIBRARY_PATH as set): what the shim does before an exec, for the exec `velo run`
 *       itself does (the kernel and ld.so read those files without any shim). Best effort, silent.
 * stdout: one JSON object; errors on stderr. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "build.h"
#include "elfdeps.h"
#include "manifest.h"
#include "ph.h"
#include "real.h"


static int cmd_build(int argc, char **argv) {
  struct velo_build_result r;
  struct velo_err err = {0};
  int rc = velo_project_build(argv[2], argv[3], (const char *const *)argv + 4, argc - 4, &r, &err);
  if (rc < 0) {
    fprintf(stderr, "velo-project: %s\n", err.msg);
    /* 4: what stopped it is a permission (velo run says PERMISSION_DENIED, never a failure of its own) */
    return rc == VELO_BUILD_OTHER ? 3 : (err.errnum == EACCES || err.errnum == EPERM || err.errnum == EROFS) ? 4 : 1;
  }
  if (r.fresh) printf("{\"state\":\"fresh\"}\n");
  else
    printf("{\"state\":\"built\",\"files\":%lu,\"placeholders\":%lu,\"dirs\":%lu,\"symlinks\":%lu,\"others\":%lu,\"skipped\":%lu}\n",
           r.files, r.placeholders, r.dirs, r.symlinks, r.others, r.skipped);
  return 0;
}

/* ---- wake ---- */
static unsigned long woken;
static int wake_dir(char *path, size_t len, size_t cap) {
  DIR *d = opendir(path);
  if (!d) {
    fprintf(stderr, "velo-project: cannot read %s: %s\n", path, strerror(errno));
    return -1;
  }
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    size_t nl = strlen(de->d_name);
    if (len + nl + 2 >= cap) {
      fprintf(stderr, "velo-project: path too long: %s/%s\n", path, de->d_name);
      rc = -1;
      break;
    }
    path[len] = '/';
    memcpy(path + len + 1, de->d_name, nl + 1);
    struct stat st;
    /* gone since readdir: nothing to wake; any other failure would leave a placeholder asleep, so say so */
    int sr = lstat(path, &st);
    if (sr < 0 && errno != ENOENT) {
      fprintf(stderr, "velo-project: cannot stat %s: %s\n", path, strerror(errno));
      rc = -1;
    }
    if (sr == 0) {
      if (S_ISDIR(st.st_mode)) {
        /* a read-only directory must be writable for the rename into it; restore its mode after */
        int ro = !(st.st_mode & S_IWUSR);
        if (ro) chmod(path, st.st_mode | S_IWUSR);
        rc = wake_dir(path, len + 1 + nl, cap);
        if (ro) chmod(path, st.st_mode & 07777);
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
      } else if (velo_ph_maybe(&st)) {
        struct velo_ph ph;
        if (velo_ph_get_path(path, 0, &ph)) {
          if (velo_ph_materialize(path) < 0) {
            fprintf(stderr, "velo-project: cannot materialize %s: %s\n", path, strerror(errno));
            rc = -1;
          } else {
            woken++;
          }
        }
      }
    }
    path[len] = 0;
  }
  closedir(d);
  return rc;
}

static int cmd_wake(const char *home, const char *root) {
  velo_real_init();
  snprintf(velo_cas, sizeof velo_cas, "%s/cas/blake3", home);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", root);
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') path[--len] = 0;
  struct stat st;
  if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "velo-project: %s is not a directory\n", path);
    return 1;
  }
  int ro = !(st.st_mode & S_IWUSR);
  if (ro) chmod(path, st.st_mode | S_IWUSR);
  int rc = wake_dir(path, len, sizeof path);
  if (ro) chmod(path, st.st_mode & 07777);
  if (rc == 0 && removexattr(path, VELO_XATTR_STAMP) < 0 && errno != ENODATA) {
    fprintf(stderr, "velo-project: cannot unmark %s: %s\n", path, strerror(errno));
    rc = -1;
  }
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
  if (rc == 0) printf("{\"state\":\"woken\",\"materialized\":%lu}\n", woken);
  return rc ? 1 : 0;
}

/* ---- probe: which of these files are placeholders, and of which object? (for velo ingest) ---- */
static int cmd_probe(const char *home) {
  velo_real_init();
  snprintf(velo_cas, sizeof velo_cas, "%s/cas/blake3", home);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getdelim(&line, &cap, 0, stdin)) > 0) {
    if (line[n - 1] == 0) n--;
    line[n] = 0;
    struct stat st;
    struct velo_ph ph;
    if (lstat(line, &st) == 0 && velo_ph_maybe(&st) && velo_ph_get_path(line, 0, &ph)) {
      fwrite(line, 1, (size_t)n + 1, stdout);
      fwrite(ph.obj, 1, strlen(ph.obj) + 1, stdout);
    }
  }
  free(line);
  return ferror(stdout) ? 1 : 0;
}

static int cmd_prepare(const char *home, const char *file) {
  velo_real_init();
  snprintf(velo_cas, sizeof velo_cas, "%s/cas/blake3", home);
  struct stat st;
  char real[PATH_MAX];
  struct velo_ph ph;
  if (stat(file, &st) == 0 && velo_ph_maybe(&st) && realpath(file, real) && velo_ph_get_path(real, 0, &ph)) velo_ph_materialize(real);
  velo_prepare_deps(file, NULL, getenv("LD_LIBRARY_PATH"));
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "probe")) return cmd_probe(argv[2]);
  if (argc == 4 && !strcmp(argv[1], "prepare")) return cmd_prepare(argv[2], argv[3]);
  if (argc >= 5 && !strcmp(argv[1], "build")) return cmd_build(argc, argv);
  if (argc == 4 && !strcmp(argv[1], "wake")) return cmd_wake(argv[2], argv[3]);
  if (argc == 3 && !strcmp(argv[1], "stamp")) {
    char have[256];
    ssize_t n = getxattr(argv[2], VELO_XATTR_STAMP, have, sizeof have - 1);
    have[n > 0 ? n : 0] = 0;
    printf("%s\n", have);
    return 0;
  }
  fprintf(stderr, "usage: velo-project build HOME ROOT LAYER_TOP [LAYER ...] | wake HOME ROOT | probe HOME | stamp ROOT | prepare HOME FILE\n");
  return 2;
}
