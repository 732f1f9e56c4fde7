/* glibc's tree walkers: nftw/ftw and fts stat through glibc-internal aliases the shim cannot interpose,
 * so a placeholder would show st_blocks 0 and, in phantom mode, a walk of the projection root would find
 * nothing (ENOENT). The walkers themselves are wrapped instead: the walk runs on the real (mapped) path
 * and each entry is patched on its way to the program's callback or out of fts_read, exactly as a stat
 * through the shim would be (velo_stat_fixup), with paths mapped back to the names the program used.
 * Phantom mode: fts is patched for st_blocks only (its paths are not mapped back): see docs/shim.md. */
#include <dlfcn.h>
#include <errno.h>
#include <fts.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>

#include "shim.h"

typedef int (*nftw_fn)(const char *, const struct stat *, int, struct FTW *);
typedef int (*ftw_fn)(const char *, const struct stat *, int);

/* One walk in progress on this thread (a callback may start another: the previous one is restored). */
struct walk {
  nftw_fn nfn;
  ftw_fn fn;
  int flags;
  const char *given;  /* dirpath as the program passed it */
  size_t given_len;
  const char *mapped; /* what the walk really runs on (== given unless phantom-mapped) */
  size_t mapped_len;
  char path[PATH_MAX];
};
static __thread struct walk *cur;

static void *next(const char *name) { return dlsym(RTLD_NEXT, name); }

/* Patch SB for FPATH (a path of the real walk) and give the path the program should see. */
static const char *fix(struct walk *w, const char *fpath, int typeflag, const struct stat *sb, struct stat *out, int base,
                       int *base_out) {
  *base_out = base;
  if (sb && typeflag != FTW_NS && velo_ph_maybe(sb)) {
    *out = *sb;
    /* with FTW_CHDIR the walk sits in the entry's directory: its name is relative to that */
    const char *p = (w->flags & FTW_CHDIR) ? fpath + base : fpath;
    velo_stat_fixup(AT_FDCWD, p, (w->flags & FTW_PHYS) ? AT_SYMLINK_NOFOLLOW : 0, out);
  }
  if (w->mapped == w->given || strncmp(fpath, w->mapped, w->mapped_len)) return fpath;
  if (snprintf(w->path, sizeof w->path, "%s%s", w->given, fpath + w->mapped_len) >= (int)sizeof w->path) return fpath;
  if ((size_t)base >= w->mapped_len) {
    *base_out = base + (int)w->given_len - (int)w->mapped_len;
  } else { /* the top itself: its last component, in the name the program gave */
    const char *s = strrchr(w->given, '/');
    *base_out = s && s[1] ? (int)(s + 1 - w->given) : 0;
  }
  return w->path;
}

static int ntramp(const char *fpath, const struct stat *sb, int typeflag, struct FTW *f) {
  struct walk *w = cur;
  struct stat st;
  int base;
  const char *p = fix(w, fpath, typeflag, sb, &st, f->base, &base);
  struct FTW ff = {.base = base, .level = f->level};
  const struct stat *use = sb && typeflag != FTW_NS && velo_ph_maybe(sb) ? &st : sb;
  cur = NULL; /* a walk started by the callback gets its own */
  int r = w->nfn(p, use, typeflag, &ff);
  cur = w;
  return r;
}

static int tramp(const char *fpath, const struct stat *sb, int typeflag) {
  struct walk *w = cur;
  struct stat st;
  int base;
  const char *p = fix(w, fpath, typeflag, sb, &st, 0, &base);
  const struct stat *use = sb && typeflag != FTW_NS && velo_ph_maybe(sb) ? &st : sb;
  cur = NULL;
  int r = w->fn(p, use, typeflag);
  cur = w;
  return r;
}

static int walk_common(const char *real_name, const char *dir, void *fn, int nopenfd, int flags, int is_nftw) {
  REAL_READY();
  void *real = next(real_name);
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  char mb[PATH_MAX];
  struct walk w = {.flags = is_nftw ? flags : 0, .given = dir};
  w.mapped = dir ? MAP(AT_FDCWD, dir, mb) : dir;
  if (is_nftw) w.nfn = (nftw_fn)fn;
  else w.fn = (ftw_fn)fn;
  w.given_len = dir ? strlen(dir) : 0;
  w.mapped_len = w.mapped ? strlen(w.mapped) : 0;
  struct walk *saved = cur;
  cur = &w;
  int r = is_nftw ? ((int (*)(const char *, nftw_fn, int, int))real)(w.mapped, ntramp, nopenfd, flags)
                  : ((int (*)(const char *, ftw_fn, int))real)(w.mapped, tramp, nopenfd);
  cur = saved;
  return r;
}

VELO_EXPORT int nftw(const char *dir, nftw_fn fn, int nopenfd, int flags) { return walk_common("nftw", dir, (void *)fn, nopenfd, flags, 1); }
/* struct stat64 is struct stat on 64-bit Linux: one trampoline serves both */
VELO_EXPORT int nftw64(const char *dir, __nftw64_func_t fn, int nopenfd, int flags) { return walk_common("nftw64", dir, (void *)fn, nopenfd, flags, 1); }
VELO_EXPORT int ftw(const char *dir, ftw_fn fn, int nopenfd) { return walk_common("ftw", dir, (void *)fn, nopenfd, 0, 0); }
VELO_EXPORT int ftw64(const char *dir, __ftw64_func_t fn, int nopenfd) { return walk_common("ftw64", dir, (void *)fn, nopenfd, 0, 0); }

/* fts: patch each entry's stat as it is handed out. fts_accpath names the entry from where fts is now
 * (it chdirs unless FTS_NOCHDIR). */
static void fts_fix(FTS *fts, FTSENT *e) {
  if (!e || !e->fts_statp || e->fts_info == FTS_NS || e->fts_info == FTS_NSOK || !velo_ph_maybe(e->fts_statp)) return;
  int follow = (fts->fts_options & FTS_LOGICAL) || (e->fts_level == FTS_ROOTLEVEL && (fts->fts_options & FTS_COMFOLLOW));
  velo_stat_fixup(AT_FDCWD, e->fts_accpath, follow ? 0 : AT_SYMLINK_NOFOLLOW, e->fts_statp);
}

VELO_EXPORT FTSENT *fts_read(FTS *fts) {
  REAL_READY();
  static FTSENT *(*real)(FTS *);
  if (!real && !(real = next("fts_read"))) {
    errno = ENOSYS;
    return NULL;
  }
  int e = errno;
  FTSENT *ent = real(fts);
  if (ent) {
    fts_fix(fts, ent);
    errno = e;
  }
  return ent;
}

VELO_EXPORT FTSENT *fts_children(FTS *fts, int opts) {
  REAL_READY();
  static FTSENT *(*real)(FTS *, int);
  if (!real && !(real = next("fts_children"))) {
    errno = ENOSYS;
    return NULL;
  }
  FTSENT *list = real(fts, opts);
  int e = errno;
  /* the children's accpath is relative to their parent, where fts is not yet: patch only with NOCHDIR,
   * or by their full path */
  for (FTSENT *c = list; c; c = c->fts_link)
    if (c->fts_statp && c->fts_info != FTS_NS && velo_ph_maybe(c->fts_statp))
      velo_stat_fixup(AT_FDCWD, c->fts_path, (fts->fts_options & FTS_LOGICAL) ? 0 : AT_SYMLINK_NOFOLLOW, c->fts_statp);
  errno = e;
  return list;
}
