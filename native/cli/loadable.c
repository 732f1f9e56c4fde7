#include "loadable.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"
#include "util.h"
#include "ph.h"
#include "real.h"

int front_resolve_command(const char *cmd, char **file) {
  *file = NULL;
  struct stat st;
  if (strchr(cmd, '/')) {
    if (stat(cmd, &st) < 0) return 0; /* existsSync follows symlinks */
    *file = path_resolve(cmd);
    return *file ? 1 : FRONT_FALLBACK;
  }
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *d = path;; d++) {
    const char *e = strchrnul(d, ':');
    /* an empty or relative entry: path.join would give Node a name without a slash, which libuv looks up
     * in PATH again; rare enough to leave to Node */
    if (e == d || *d != '/') return FRONT_FALLBACK;
    char *cand;
    if (asprintf(&cand, "%.*s/%s", (int)(e - d), d, cmd) < 0) return FRONT_FALLBACK;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
      /* path.join normalises the joined path ("/usr//bin" → "/usr/bin", "/a/../b" → "/b") */
      *file = path_resolve(cand);
      free(cand);
      return *file ? 1 : FRONT_FALLBACK;
    }
    free(cand);
    if (!*e) return 0;
    d = e;
  }
}

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64(const unsigned char *p) { return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32; }

/* JavaScript's \s over latin1 text: what elf.ts's trim() and split(/\s+/) treat as a separator */
static int js_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0; }

static int check(const char *file, int depth, enum loadable *verdict, char **judged) {
  *verdict = LOADABLE_OK;
  cleanup_fd int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0; /* let the exec itself report it */
  struct stat st;
  if (fstat(fd, &st) < 0) return FRONT_FALLBACK;
  /* Node opens with 'r' and reads: a directory fails with EISDIR there (an exception, not a verdict) */
  if (S_ISDIR(st.st_mode)) return FRONT_FALLBACK;
  if (((st.st_mode & S_ISUID) && st.st_uid != getuid()) || ((st.st_mode & S_ISGID) && st.st_gid != getgid())) {
    *verdict = LOADABLE_SETUID;
    *judged = strdup(file);
    return 0;
  }
  /* a placeholder is judged by the content it stands for (velo run makes it real before the exec) */
  struct velo_ph mark;
  if (velo_cas[0] && velo_ph_maybe(&st) && velo_ph_get_fd(fd, &mark)) {
    int ofd = open(mark.obj, O_RDONLY | O_CLOEXEC);
    if (ofd >= 0) {
      close(fd);
      fd = ofd;
    }
  }
  unsigned char head[4096];
  ssize_t n = read(fd, head, sizeof head);
  if (n < 0) return FRONT_FALLBACK;
  if (n >= 2 && head[0] == '#' && head[1] == '!' && depth < 2) {
    const unsigned char *p = head + 2, *end = head + n;
    const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl) end = nl;
    while (p < end && js_space(*p)) p++;
    const unsigned char *q = p;
    while (q < end && !js_space(*q)) q++;
    if (q == p) return 0;
    /* bytes ≥ 0x80 are latin1 characters to Node: the path it opens is their UTF-8 encoding, not these bytes */
    for (const unsigned char *c = p; c < q; c++)
      if (*c >= 0x80 || *c == 0) return FRONT_FALLBACK;
    char interp[PATH_MAX];
    if ((size_t)(q - p) >= sizeof interp) return FRONT_FALLBACK;
    memcpy(interp, p, (size_t)(q - p));
    interp[q - p] = 0;
    return check(interp, depth + 1, verdict, judged);
  }
  if (n < 64 || u32(head) != 0x464c457f || head[4] != 2) return 0; /* not a 64-bit ELF: the kernel decides */
  uint16_t type = u16(head + 16), phentsize = u16(head + 54), phnum = u16(head + 56);
  uint64_t phoff = u64(head + 32);
  size_t len = (size_t)phentsize * phnum;
  if (len && phentsize < 4) return FRONT_FALLBACK; /* Node's readUInt32LE would throw past the buffer */
  if (phoff > (1ull << 53)) return FRONT_FALLBACK; /* beyond a JS number's exact range */
  unsigned char *ph = calloc(1, len ? len : 1);
  if (!ph) return FRONT_FALLBACK;
  /* one read, as readSync does; whatever it does not fill stays zero */
  if (len && pread(fd, ph, len, (off_t)phoff) < 0) {
    free(ph);
    return FRONT_FALLBACK;
  }
  int interp = 0;
  for (size_t i = 0; i < phnum && !interp; i++) interp = u32(ph + i * phentsize) == 3 /* PT_INTERP */;
  free(ph);
  if (!interp && (type == 2 /* ET_EXEC */ || type == 3 /* ET_DYN */)) {
    *verdict = LOADABLE_STATIC;
    *judged = strdup(file);
  }
  return 0;
}

int front_check_loadable(const char *file, enum loadable *verdict, char **judged) {
  *judged = NULL;
  velo_real_init();
  return check(file, 0, verdict, judged);
}
