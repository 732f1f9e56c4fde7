/* Phantom mode: the projection root does not exist on disk, yet a program listing its parent directory
 * (ls, find, os.listdir, fs.readdirSync) must see it. readdir/readdir64 on a stream of that parent get one
 * more entry at the end (unless a real entry of that name was there: the projection shadows it), and
 * scandir/scandir64 (which call readdir inside libc) get it added to their result. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

static struct {
  int ok;
  dev_t dev;
  ino_t ino;
  ino_t skel_ino;
  char name[256];
} P;

#define SLOTS 32
static struct slot {
  DIR *d;
  int done, seen;
  struct dirent de;
} slots[SLOTS];
static int n_active;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void velo_phantom_dir_init(void) {
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s", S.root);
  char *slash = strrchr(parent, '/');
  if (!slash) return;
  snprintf(P.name, sizeof P.name, "%s", slash + 1);
  if (slash == parent) slash[1] = 0;
  else *slash = 0;
  struct stat st, sk;
  if (!P.name[0] || R.fstatat(AT_FDCWD, parent, &st, 0) < 0 || R.fstatat(AT_FDCWD, S.skel, &sk, 0) < 0) return;
  P.dev = st.st_dev;
  P.ino = st.st_ino;
  P.skel_ino = sk.st_ino;
  P.ok = 1;
}

static int is_parent_fd(int fd) {
  struct stat st;
  return P.ok && fd >= 0 && R.fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_dev == P.dev && st.st_ino == P.ino;
}

void velo_phantom_track_dir(DIR *d) {
  if (!d || !is_parent_fd(dirfd(d))) return;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < SLOTS; i++)
    if (!slots[i].d) {
      memset(&slots[i], 0, sizeof slots[i]);
      slots[i].d = d;
      n_active++;
      break;
    }
  pthread_mutex_unlock(&mu);
}

static struct slot *find(DIR *d) {
  for (int i = 0; i < SLOTS; i++)
    if (slots[i].d == d) return &slots[i];
  return NULL;
}

static void fill(struct dirent *de) {
  memset(de, 0, sizeof *de);
  de->d_ino = P.skel_ino;
  de->d_reclen = sizeof *de;
  de->d_type = DT_DIR;
  snprintf(de->d_name, sizeof de->d_name, "%s", P.name);
}

VELO_EXPORT struct dirent *readdir(DIR *d) {
  REAL_READY();
  int e = errno;
  struct dirent *r = R.readdir(d);
  if (!__atomic_load_n(&n_active, __ATOMIC_RELAXED)) return r;
  pthread_mutex_lock(&mu);
  struct slot *s = find(d);
  if (s) {
    if (r && !strcmp(r->d_name, P.name)) s->seen = 1;
    if (!r && !s->done && !s->seen) {
      s->done = 1;
      fill(&s->de);
      r = &s->de;
      errno = e;
    }
  }
  pthread_mutex_unlock(&mu);
  return r;
}
VELO_EXPORT struct dirent64 *readdir64(DIR *d) { return (struct dirent64 *)readdir(d); }

VELO_EXPORT DIR *fdopendir(int fd) {
  REAL_READY();
  DIR *d = R.fdopendir(fd);
  if (d && S.phantom) velo_phantom_track_dir(d);
  return d;
}

VELO_EXPORT int closedir(DIR *d) {
  REAL_READY();
  if (__atomic_load_n(&n_active, __ATOMIC_RELAXED)) {
    pthread_mutex_lock(&mu);
    struct slot *s = find(d);
    if (s) {
      s->d = NULL;
      n_active--;
    }
    pthread_mutex_unlock(&mu);
  }
  return R.closedir(d);
}

VELO_EXPORT void rewinddir(DIR *d) {
  REAL_READY();
  if (__atomic_load_n(&n_active, __ATOMIC_RELAXED)) {
    pthread_mutex_lock(&mu);
    struct slot *s = find(d);
    if (s) s->done = s->seen = 0;
    pthread_mutex_unlock(&mu);
  }
  R.rewinddir(d);
}

int velo_phantom_scandir_fix(const char *real_dir, struct dirent ***list, int n, int (*filter)(const struct dirent *),
                             int (*compar)(const struct dirent **, const struct dirent **)) {
  if (!P.ok) return n;
  struct stat st;
  if (R.fstatat(AT_FDCWD, real_dir, &st, 0) < 0 || st.st_dev != P.dev || st.st_ino != P.ino) return n;
  for (int i = 0; i < n; i++)
    if (!strcmp((*list)[i]->d_name, P.name)) return n;
  struct dirent *de = malloc(sizeof *de);
  if (!de) return n;
  fill(de);
  if (filter && !filter(de)) {
    free(de);
    return n;
  }
  struct dirent **nl = realloc(*list, (size_t)(n + 1) * sizeof *nl);
  if (!nl) {
    free(de);
    return n;
  }
  nl[n++] = de;
  *list = nl;
  if (compar) qsort(nl, (size_t)n, sizeof *nl, (int (*)(const void *, const void *))compar);
  return n;
}
