#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char *const V1[] = {"memory", "pids", "cpu"};
#define PERIOD 100000

static const char *cg_root(void) {
  const char *r = getenv("VELO_CGROUP_ROOT");
  return r && *r ? r : "/sys/fs/cgroup";
}

int cgroup_dirs(const char *name, struct strlist *out) {
  memset(out, 0, sizeof *out);
  char p[4200];
  snprintf(p, sizeof p, "%s/cgroup.controllers", cg_root());
  if (access(p, F_OK) == 0) return -1; /* pure v2: served by Node */
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s/cgroup.procs", cg_root(), V1[i]);
    if (access(p, F_OK) < 0) return -1; /* Node renders UNSUPPORTED */
  }
  for (int i = 0; i < 3; i++) {
    /* path.join normalises: a root given with a trailing slash still yields single slashes */
    const char *root = cg_root();
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/') rl--;
    snprintf(p, sizeof p, "%.*s/%s/velo/%s", (int)rl, root, V1[i], name);
    if (strlist_push(out, p) < 0) return -1;
  }
  return 0;
}

/* fs.mkdirSync(path, {recursive: true}): an existing directory is fine, an existing file is EEXIST (a sandbox
 * named after a cgroup control file, "tasks" or "cgroup.procs": its "cgroup" would be that file) */
static int exists_as_dir(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  errno = EEXIST;
  return -1;
}

static int mkdir_p(const char *path) {
  if (mkdir(path, 0777) == 0) return 0;
  if (errno == EEXIST) return exists_as_dir(path);
  if (errno != ENOENT) return -1;
  char *dup = strdup(path);
  if (!dup) return -1;
  char *s = strrchr(dup, '/');
  if (s && s != dup) {
    *s = 0;
    int r = mkdir_p(dup);
    free(dup);
    if (r < 0) return -1;
  } else free(dup);
  if (mkdir(path, 0777) == 0) return 0;
  return errno == EEXIST ? exists_as_dir(path) : -1;
}

/* fs.writeFileSync(file, value): one write of the whole value */
static int cg_write(const char *dir, const char *file, const char *value, char *what, size_t what_len) {
  char p[4300];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd >= 0) {
    ssize_t n = write(fd, value, strlen(value));
    int e = errno;
    close(fd);
    if (n == (ssize_t)strlen(value)) return 0;
    errno = n < 0 ? e : EIO;
  }
  snprintf(what, what_len, "cannot write %s to %s", value, p);
  return -1;
}

static double limit(const struct tlimit *l, int n, const char *key) {
  for (int i = 0; i < n; i++)
    if (!strcmp(l[i].key, key)) return l[i].value;
  return 0;
}

int cgroup_ensure(const struct strlist *dirs, const struct tlimit *limits, int n_limits, char *what, size_t what_len) {
  for (size_t i = 0; i < dirs->n; i++)
    if (mkdir_p(dirs->v[i]) < 0) {
      const char *name = strrchr(dirs->v[i], '/') + 1;
      int e = errno;
      /* EEXIST: the whole message as Node words it (libuv's text; the caller renders it as is) */
      if (e == EEXIST) snprintf(what, what_len, "cannot set up cgroups for %s: EEXIST: file already exists, mkdir '%s'", name, dirs->v[i]);
      else snprintf(what, what_len, "cannot set up cgroups for %s", name);
      errno = e;
      return -1;
    }
  const char *mem = dirs->v[0], *pids = dirs->v[1], *cpu = dirs->v[2];
  double m = limit(limits, n_limits, "memory"), pl = limit(limits, n_limits, "pids"), c = limit(limits, n_limits, "cpus");
  char v[64];
  if (m > 0) fmt_number(v, sizeof v, m);
  else strcpy(v, "-1");
  char memsw[4300];
  snprintf(memsw, sizeof memsw, "%s/memory.memsw.limit_in_bytes", mem);
  if (access(memsw, F_OK) == 0) {
    /* memsw must stay ≥ limit: lower it after raising, raise it before lowering (write order matters) */
    if (m > 0) {
      if (cg_write(mem, "memory.limit_in_bytes", v, what, what_len) < 0 || cg_write(mem, "memory.memsw.limit_in_bytes", v, what, what_len) < 0) {
        if (cg_write(mem, "memory.memsw.limit_in_bytes", v, what, what_len) < 0 || cg_write(mem, "memory.limit_in_bytes", v, what, what_len) < 0)
          return -1;
      }
    } else if (cg_write(mem, "memory.memsw.limit_in_bytes", "-1", what, what_len) < 0 || cg_write(mem, "memory.limit_in_bytes", "-1", what, what_len) < 0)
      return -1;
  } else if (cg_write(mem, "memory.limit_in_bytes", v, what, what_len) < 0)
    return -1;
  if (pl > 0) fmt_number(v, sizeof v, pl);
  else strcpy(v, "max");
  if (cg_write(pids, "pids.max", v, what, what_len) < 0) return -1;
  if (cg_write(cpu, "cpu.cfs_period_us", "100000", what, what_len) < 0) return -1;
  /* Math.round(cpus * PERIOD): the same double product, rounded half up */
  if (c > 0) snprintf(v, sizeof v, "%.0f", floor(c * PERIOD + 0.5));
  else strcpy(v, "-1");
  return cg_write(cpu, "cpu.cfs_quota_us", v, what, what_len);
}

static void kill_procs(const char *dir) {
  char p[4300];
  snprintf(p, sizeof p, "%s/cgroup.procs", dir);
  FILE *f = fopen(p, "re");
  if (!f) return;
  long pid;
  while (fscanf(f, "%ld", &pid) == 1)
    if (pid > 0) kill((pid_t)pid, SIGKILL);
  fclose(f);
}

int cgroup_remove(const struct strlist *dirs, char *what, size_t what_len) {
  double deadline = now_ms() + 5000;
  for (size_t i = 0; i < dirs->n; i++) {
    for (;;) {
      /* ENOTDIR: not a cgroup (a control file of velo's parent cgroup, for a sandbox named after one) */
      if (rmdir(dirs->v[i]) == 0 || errno == ENOENT || errno == ENOTDIR) break;
      if (errno != EBUSY || now_ms() > deadline) {
        int e = errno;
        snprintf(what, what_len, "cannot remove cgroup %s", dirs->v[i]);
        errno = e;
        return -1;
      }
      kill_procs(dirs->v[i]);
      nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
  }
  return 0;
}
