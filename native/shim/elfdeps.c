#include "elfdeps.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ph.h"
#include "real.h"

#define MAX_SEEN 256
#define MAX_DEPTH 12

/* Memory comes from mmap, never malloc, and path buffers are not on the stack: exec may run in a vfork
 * child (malloc's locks are the parent's) or on a small thread stack (dlopen from a worker thread). */
static void *mem(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

struct seen {
  int n;
  struct {
    dev_t dev;
    ino_t ino;
  } at[MAX_SEEN];
};

struct elf_dyn {
  char *strtab;
  size_t strsz;
  unsigned long needed[64];
  int n_needed;
  long rpath, runpath; /* string table offsets, -1 when absent */
};

static void closefd(int *fd) {
  if (*fd >= 0) R.close(*fd);
}

/* Read the dynamic section's strings of interest. 0 = ok, -1 = not a 64-bit dynamic ELF (or unreadable). */
static int read_dyn(int fd, struct elf_dyn *d) {
  Elf64_Ehdr eh;
  Elf64_Phdr ph[64];
  d->strtab = NULL;
  d->n_needed = 0;
  d->rpath = d->runpath = -1;
  if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64)
    return -1;
  ssize_t want = (ssize_t)(eh.e_phnum * sizeof(Elf64_Phdr));
  if (pread(fd, ph, (size_t)want, (off_t)eh.e_phoff) != want) return -1;
  const Elf64_Phdr *dyn = NULL;
  for (int i = 0; i < eh.e_phnum; i++)
    if (ph[i].p_type == PT_DYNAMIC) dyn = &ph[i];
  if (!dyn || dyn->p_filesz == 0 || dyn->p_filesz > (1 << 16)) return -1;
  Elf64_Dyn *ents = mem(dyn->p_filesz);
  if (!ents) return -1;
  if (pread(fd, ents, dyn->p_filesz, (off_t)dyn->p_offset) != (ssize_t)dyn->p_filesz) {
    munmap(ents, dyn->p_filesz);
    return -1;
  }
  uint64_t strtab = 0, strsz = 0;
  size_t n = dyn->p_filesz / sizeof(Elf64_Dyn);
  for (size_t i = 0; i < n && ents[i].d_tag != DT_NULL; i++) {
    switch (ents[i].d_tag) {
    case DT_STRTAB: strtab = ents[i].d_un.d_ptr; break;
    case DT_STRSZ: strsz = ents[i].d_un.d_val; break;
    case DT_RPATH: d->rpath = (long)ents[i].d_un.d_val; break;
    case DT_RUNPATH: d->runpath = (long)ents[i].d_un.d_val; break;
    case DT_NEEDED:
      if (d->n_needed < 64) d->needed[d->n_needed++] = ents[i].d_un.d_val;
      break;
    }
  }
  munmap(ents, dyn->p_filesz);
  if (!strtab || !strsz || strsz > (1 << 20)) return -1;
  /* DT_STRTAB is an address: find the file offset through the PT_LOAD that maps it */
  off_t off = -1;
  for (int i = 0; i < eh.e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && strtab >= ph[i].p_vaddr && strtab + strsz <= ph[i].p_vaddr + ph[i].p_filesz)
      off = (off_t)(strtab - ph[i].p_vaddr + ph[i].p_offset);
  if (off < 0 || !(d->strtab = mem(strsz + 1))) return -1;
  if (pread(fd, d->strtab, strsz, off) != (ssize_t)strsz) {
    munmap(d->strtab, strsz + 1);
    d->strtab = NULL;
    return -1;
  }
  d->strtab[strsz] = 0;
  d->strsz = strsz;
  return 0;
}

static const char *dstr(const struct elf_dyn *d, unsigned long off) { return off < d->strsz ? d->strtab + off : ""; }

static void visit(const char *path, velo_dir_map map, const char *llp, struct seen *seen, int depth);

/* Try NAME in each directory of a ':'-separated LIST ($ORIGIN → ORIGIN). 1 = found (and visited). */
static int search(const char *list, const char *origin, const char *name, velo_dir_map map, const char *llp, struct seen *seen, int depth) {
  struct {
    char dir[PATH_MAX], cand[PATH_MAX], mb[PATH_MAX];
  } *f = list && *list ? mem(sizeof *f) : NULL;
  if (!f) return 0;
  char *dir = f->dir, *cand = f->cand, *mb = f->mb;
  int found = 0;
  for (const char *p = list; *p && !found;) {
    size_t l = strcspn(p, ":;");
    size_t o = 0;
    for (size_t i = 0; i < l && o < PATH_MAX - 1;) {
      if (!strncmp(p + i, "$ORIGIN", 7) || !strncmp(p + i, "${ORIGIN}", 9)) {
        int w = snprintf(dir + o, PATH_MAX - o, "%s", origin);
        o = w < 0 || (size_t)w >= PATH_MAX - o ? PATH_MAX - 1 : o + (size_t)w;
        i += p[i + 1] == '{' ? 9 : 7;
      } else {
        dir[o++] = p[i++];
      }
    }
    dir[o] = 0;
    p += l;
    if (*p) p++;
    if (!dir[0] || strchr(dir, '$')) continue; /* $LIB, $PLATFORM: ld.so's own expansions, not ours to guess */
    const char *d = map ? map(dir, mb, PATH_MAX) : dir;
    if (snprintf(cand, PATH_MAX, "%s/%s", d, name) >= PATH_MAX) continue;
    struct stat st;
    if (R.fstatat(AT_FDCWD, cand, &st, 0) < 0 || !S_ISREG(st.st_mode)) continue;
    visit(cand, map, llp, seen, depth + 1);
    found = 1;
  }
  munmap(f, sizeof *f);
  return found;
}

struct frame {
  char real[PATH_MAX], origin[PATH_MAX];
};
static void frame_free(struct frame **f) {
  if (*f) munmap(*f, sizeof **f);
}

static void visit(const char *path, velo_dir_map map, const char *llp, struct seen *seen, int depth) {
  if (depth > MAX_DEPTH) return;
  struct stat st;
  if (R.fstatat(AT_FDCWD, path, &st, 0) < 0) return;
  __attribute__((cleanup(frame_free))) struct frame *f = mem(sizeof *f);
  if (!f) return;
  char *real = f->real, *origin = f->origin;
  int have_real = 0;
  if (velo_ph_maybe(&st)) {
    struct velo_ph ph;
    if (!R.realpath || !R.realpath(path, real)) return;
    have_real = 1;
    if (!velo_ph_get_path(real, 0, &ph) || velo_ph_materialize(real) < 0) return;
    if (R.fstatat(AT_FDCWD, real, &st, 0) < 0) return;
  }
  for (int i = 0; i < seen->n; i++)
    if (seen->at[i].dev == st.st_dev && seen->at[i].ino == st.st_ino) return;
  if (seen->n == MAX_SEEN) return;
  seen->at[seen->n].dev = st.st_dev;
  seen->at[seen->n].ino = st.st_ino;
  seen->n++;

  __attribute__((cleanup(closefd))) int fd = R.openat(AT_FDCWD, have_real ? real : path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct elf_dyn d;
  if (read_dyn(fd, &d) < 0) return;
  /* the usual exec (a system program, no run path, no LD_LIBRARY_PATH) ends here: nothing of ours to find */
  int paths = 0;
  for (int i = 0; i < d.n_needed; i++) paths |= strchr(dstr(&d, d.needed[i]), '/') != NULL;
  if (paths || d.rpath >= 0 || d.runpath >= 0 || (llp && *llp)) {
    /* $ORIGIN: the directory of the file as ld.so resolved it (symlinks followed) */
    if (!have_real && (!R.realpath || !R.realpath(path, real))) snprintf(real, PATH_MAX, "%s", path);
    snprintf(origin, PATH_MAX, "%s", real);
    char *slash = strrchr(origin, '/');
    if (slash) *(slash == origin ? slash + 1 : slash) = 0;
    for (int i = 0; i < d.n_needed; i++) {
      const char *name = dstr(&d, d.needed[i]);
      if (!*name) continue;
      if (strchr(name, '/')) { /* a path: ld.so opens it as it is */
        struct stat ns;
        if (R.fstatat(AT_FDCWD, name, &ns, 0) == 0 && S_ISREG(ns.st_mode)) visit(name, map, llp, seen, depth + 1);
        continue;
      }
      if (d.runpath < 0 && d.rpath >= 0 && search(dstr(&d, (unsigned long)d.rpath), origin, name, map, llp, seen, depth)) continue;
      if (search(llp, origin, name, map, llp, seen, depth)) continue;
      if (d.runpath >= 0) search(dstr(&d, (unsigned long)d.runpath), origin, name, map, llp, seen, depth);
    }
  }
  munmap(d.strtab, d.strsz + 1);
}

void velo_prepare_deps(const char *path, velo_dir_map map, const char *llp) {
  if (!path) return;
  int e = errno;
  struct seen *seen = mem(sizeof *seen); /* zero-filled */
  if (seen) {
    visit(path, map, llp, seen, 0);
    munmap(seen, sizeof *seen);
  }
  errno = e;
}
