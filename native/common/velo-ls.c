/* velo-ls HOME LAYER_ID_TOP [LAYER_ID ...]: print an image's merged view, one line per path, read from the
 * LMDB manifests by the C reader. Tests compare it with the Node side; humans use it to debug.
 * Line: <path>\t<type>\t<mode octal>\t<uid>\t<gid>\t<size>\t<hash hex or ->\t<symlink target or ->
 * Paths are printed with bytes as they are (names may be any bytes but '/' and NUL). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "manifest.h"

struct walk {
  MDB_txn *txn;
  const struct velo_view *v;
  const struct velo_dir *dir;
  char path[8192];
  size_t len;
  struct velo_err *err;
};

static char type_char(uint32_t mode) {
  switch (mode & S_IFMT) {
  case S_IFREG: return 'f';
  case S_IFDIR: return 'd';
  case S_IFLNK: return 'l';
  case S_IFIFO: return 'p';
  case S_IFCHR: return 'c';
  case S_IFBLK: return 'b';
  default: return '?';
  }
}

static void print_entry(const char *path, size_t len, const struct velo_entry *e) {
  fwrite(path, 1, len, stdout);
  printf("\t%c\t%o\t%u\t%u\t%llu\t", type_char(e->mode), e->mode & 07777, e->uid, e->gid,
         (unsigned long long)((e->mode & S_IFMT) == S_IFREG ? e->size : 0));
  int zero = 1;
  for (int i = 0; i < 32; i++) zero &= e->hash[i] == 0;
  if ((e->mode & S_IFMT) == S_IFREG && !zero)
    for (int i = 0; i < 32; i++) printf("%02x", e->hash[i]);
  else
    putchar('-');
  putchar('\t');
  if (e->target_len) fwrite(e->target, 1, e->target_len, stdout);
  else putchar('-');
  putchar('\n');
}

static int visit(void *ctx, const char *name, size_t name_len, const struct velo_entry *e, int layer) {
  (void)layer;
  struct walk *w = ctx;
  size_t old = w->len;
  if (old + 1 + name_len >= sizeof w->path) return velo_fail(w->err, ENAMETOOLONG, "path too long");
  w->path[w->len++] = '/';
  memcpy(w->path + w->len, name, name_len);
  w->len += name_len;
  print_entry(w->path, w->len, e);
  if ((e->mode & S_IFMT) == S_IFDIR) {
    struct velo_dir sub;
    struct velo_entry again;
    int r = velo_view_lookup(w->txn, w->v, w->dir, name, name_len, &again, &sub, NULL, w->err);
    if (r < 0) return -1;
    const struct velo_dir *saved = w->dir;
    w->dir = &sub;
    r = velo_view_readdir(w->txn, w->v, &sub, visit, w, w->err);
    w->dir = saved;
    if (r) return r;
  }
  w->len = old;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: velo-ls HOME LAYER_ID_TOP [LAYER_ID ...]\n");
    return 2;
  }
  struct velo_err err = {0};
  struct velo_store st;
  if (velo_store_open(&st, argv[1], &err) < 0) {
    fprintf(stderr, "velo-ls: %s\n", err.msg);
    return 1;
  }
  struct velo_view v;
  MDB_txn *txn = NULL;
  struct velo_dir root;
  struct velo_entry re;
  int rc = 1;
  if (velo_view_init(&v, &st, (const char *const *)argv + 2, argc - 2, &err) < 0) goto out;
  if (velo_txn_begin(&st, &txn, &err) < 0) goto out;
  if (velo_view_root(txn, &v, &root, &re, &err) < 0) goto out;
  print_entry(".", 1, &re);
  struct walk w = {.txn = txn, .v = &v, .dir = &root, .path = ".", .len = 1, .err = &err};
  if (velo_view_readdir(txn, &v, &root, visit, &w, &err) != 0) goto out;
  rc = 0;
out:
  if (rc) fprintf(stderr, "velo-ls: %s\n", err.msg);
  if (txn) mdb_txn_abort(txn);
  velo_store_close(&st);
  return rc;
}
