/* libvelo-shim.so internals. See docs/shim.md for the design. */
#ifndef VELO_SHIM_H
#define VELO_SHIM_H
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "ph.h"
#include "real.h"

#define VELO_EXPORT __attribute__((visibility("default")))

/* ---- state from the environment (init.c) ---- */
struct velo_shim {
  char self[PATH_MAX];      /* absolute path of this library (for LD_PRELOAD in children) */
  char **keep_env;          /* VELO_SHIM_* variables to carry into every child */
  int n_keep;
  /* phantom mode: paths under root are served from skel (a private skeleton in the user's cache) */
  int phantom;
  char root[PATH_MAX];
  size_t root_len;
  char skel[PATH_MAX];
  size_t skel_len;
  int quiet;                /* VELO_SHIM_QUIET: no warnings on stderr */
};
extern struct velo_shim S;
void velo_shim_init(void);
void velo_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- fd table (fdtab.c): fds that were redirected from a placeholder to its CAS object ---- */
struct velo_fdent {
  dev_t odev;
  ino_t oino;      /* the object's inode: guards against a stale entry after an untracked close */
  struct stat ph;  /* the placeholder's stat (patched) at open time, kept current by the f* wrappers */
  char path[PATH_MAX];
};
void velo_fd_set(int fd, const struct velo_fdent *e);
int velo_fd_get(int fd, struct velo_fdent *out); /* 1 = tracked */
void velo_fd_clear(int fd);
void velo_fd_dup(int from, int to);
/* after an fchmod/fchown/futimens on a redirected fd: refresh its placeholder snapshot */
void velo_fd_refresh(int fd);

/* ---- open (open.c) ---- */
/* After a successful open: redirect a read-only open of a placeholder to its object; materialize it first
 * for a write open (O_TRUNC: just drop the placeholder mark). Returns fd, or -1 with errno (fd closed). */
int velo_open_fixup(int fd, int flags, const char *abs_hint);

/* ---- stat (stat.c) ---- */
/* Patch a successful stat result of (dirfd, path, flags) when it describes a placeholder or a redirected fd. */
void velo_stat_fixup(int dirfd, const char *path, int flags, struct stat *st);
int velo_statx_impl(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx);

/* ---- exec (exec.c) ---- */
/* Make the file about to be executed or dlopen'ed real (the kernel and ld.so read it without the shim), and
 * the libraries ld.so will load for it (ENVP: the environment it will run with, for LD_LIBRARY_PATH). */
void velo_prepare_exec(const char *path, char *const envp[]);

/* ---- phantom path mapping (phantom.c) ---- */
/* Map a path the program gave (relative to dirfd) to the path the kernel should see. Returns path itself
 * when nothing changes, else buf. */
const char *velo_map(int dirfd, const char *path, char *buf, size_t len);
/* Map a real path (from the kernel) back to what the program should see, in place. */
void velo_unmap(char *path, size_t len);
void velo_cwd_changed(void);
/* phantom: the projection root's name is listed in its parent directory (phantomdir.c) */
void velo_phantom_dir_init(void);
void velo_phantom_track_dir(DIR *d);
int velo_phantom_scandir_fix(const char *real_dir, struct dirent ***list, int n, int (*filter)(const struct dirent *),
                             int (*compar)(const struct dirent **, const struct dirent **));

#define MAP(dirfd, p, buf) (S.phantom ? velo_map((dirfd), (p), (buf), sizeof(buf)) : (p))

#endif
