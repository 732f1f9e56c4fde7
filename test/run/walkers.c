/* nftw, ftw and fts (glibc-internal stats) over a tree: test/run/walkers.test.ts runs it on a real copy and on projections. */
#define _GNU_SOURCE
#include <fts.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int nf(const char *p, const struct stat *sb, int t, struct FTW *f) {
  printf("nftw %s base=%s t=%d size=%lld blocks=%lld level=%d\n", p, p + f->base, t, (long long)sb->st_size, (long long)sb->st_blocks, f->level);
  return 0;
}
static int of(const char *p, const struct stat *sb, int t) {
  printf("ftw %s t=%d size=%lld blocks=%lld\n", p, t, (long long)sb->st_size, (long long)sb->st_blocks);
  return 0;
}
int main(int argc, char **argv) {
  const char *dir = argv[1];
  if (nftw(dir, nf, 8, FTW_PHYS) < 0) perror("nftw");
  if (nftw(dir, nf, 8, FTW_PHYS | FTW_CHDIR | FTW_DEPTH) < 0) perror("nftw chdir");
  if (ftw(dir, of, 8) < 0) perror("ftw");
  if (argc > 2) {
    char *paths[] = {(char *)dir, NULL};
    for (int o = 0; o < 2; o++) {
      FTS *fts = fts_open(paths, FTS_PHYSICAL | (o ? FTS_NOCHDIR : 0), NULL);
      if (!fts) { perror("fts_open"); return 1; }
      FTSENT *e;
      while ((e = fts_read(fts)))
        printf("fts%d %s info=%d size=%lld blocks=%lld\n", o, e->fts_path, e->fts_info, (long long)e->fts_statp->st_size, (long long)e->fts_statp->st_blocks);
      fts_close(fts);
    }
  }
  return 0;
}
