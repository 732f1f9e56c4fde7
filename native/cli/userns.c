/* The host ids velo gives its tenants' user namespaces. velo owns a range: the "velo" entries of /etc/subuid
 * and /etc/subgid (scripts/setup.sh adds them after every existing range). It is cut into slots of 65,536 ids;
 * a tenant's slot k maps its ids 0..65535 to START+k*65536.. on the host, uid and gid alike.
 *
 * Who holds a slot: HOME/userns/K is a symlink to the tenant's name, and tenants/NAME/userns says "K". Both are
 * written under an exclusive lock (HOME/userns/lock), the symlink first. A slot is free when its symlink is
 * missing or stale — its tenant is gone (rm removed tenants/NAME), or holds another slot — so an rm frees the
 * range without a step of its own, and so does a crash at any point. */
#include "userns.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/sysutil.h"

/* START and COUNT of the "velo" line of an /etc/subuid-style file; -1 when there is none */
static int velo_entry(const char *file, unsigned long *start, unsigned long *count) {
  FILE *f = fopen(file, "re");
  if (!f) return -1;
  char line[256];
  int rc = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long s, c;
    if (!strncmp(line, "velo:", 5) && sscanf(line + 5, "%lu:%lu", &s, &c) == 2 && c >= USERNS_SIZE && s + c <= 4294967295UL) {
      *start = s;
      *count = c;
      rc = 0;
      break;
    }
  }
  fclose(f);
  return rc;
}

/* the slot tenants/NAME/userns names, or -1 */
static long tenant_slot(const char *home, const char *name) {
  char p[4400], buf[32] = "";
  snprintf(p, sizeof p, "%s/tenants/%s/userns", home, name);
  int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *end;
  long k = strtol(buf, &end, 10);
  return end != buf && (*end == '\n' || !*end) && k >= 0 ? k : -1;
}

int userns_range(const char *home, const char *name, unsigned long *uid, unsigned long *gid, char *err, size_t errlen) {
  unsigned long us, uc, gs, gc;
  if (velo_entry("/etc/subuid", &us, &uc) < 0 || velo_entry("/etc/subgid", &gs, &gc) < 0) {
    snprintf(err, errlen, "no \"velo\" range in /etc/subuid and /etc/subgid for the tenants' user namespaces (run scripts/setup.sh as root, or add velo:START:COUNT lines)");
    return -1;
  }
  unsigned long slots = (uc < gc ? uc : gc) / USERNS_SIZE;
  long k = tenant_slot(home, name);
  if (k < 0) {
    char dir[4200], lock[4300];
    snprintf(dir, sizeof dir, "%s/userns", home);
    snprintf(lock, sizeof lock, "%s/lock", dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) return snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno)), -1;
    int lfd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lfd < 0 || flock(lfd, LOCK_EX) < 0) {
      int en = errno;
      if (lfd >= 0) close(lfd);
      return snprintf(err, errlen, "cannot lock %s: %s", lock, strerror(en)), -1;
    }
    /* from the slot after the last one given, wrapping around: one check per create however many tenants live (a
     * scan from 0 made every create read every live tenant's slot: ~9 ms more per create at 1,000 tenants), and a
     * freed range is not handed out again until the others have been (as pids are) */
    char hint[4300], hbuf[32] = "";
    snprintf(hint, sizeof hint, "%s/next", dir);
    unsigned long from = 0;
    int hfd = open(hint, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (hfd >= 0) {
      ssize_t hn = read(hfd, hbuf, sizeof hbuf - 1);
      close(hfd);
      if (hn > 0) {
        hbuf[hn] = 0;
        from = strtoul(hbuf, NULL, 10);
      }
    }
    if (slots) from %= slots;
    for (unsigned long j = 0; j < slots && k < 0; j++) {
      unsigned long i = (from + j) % slots;
      char link[4400], owner[300];
      snprintf(link, sizeof link, "%s/%lu", dir, i);
      ssize_t n = readlink(link, owner, sizeof owner - 1);
      if (n >= 0) {
        owner[n] = 0;
        if (tenant_slot(home, owner) == (long)i) continue; /* a live tenant's */
        unlink(link);                                   /* stale: its tenant is gone or moved on */
      } else if (errno != ENOENT) {
        continue;
      }
      if (symlink(name, link) == 0) k = (long)i;
    }
    int rc = 0;
    if (k < 0) {
      snprintf(err, errlen, "all %lu user namespace ranges of velo's are in use", slots);
      rc = -1;
    } else {
      /* written whole (temp, rename): a crash leaves the slot stale, never half-claimed */
      char tdir[4300], num[32];
      snprintf(tdir, sizeof tdir, "%s/tenants/%s", home, name);
      int n = snprintf(num, sizeof num, "%ld\n", k);
      int dfd = open(tdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int fd = dfd < 0 ? -1 : openat(dfd, "userns.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd < 0 || write_all(fd, num, (size_t)n) < 0 || renameat(dfd, "userns.tmp", dfd, "userns") < 0) {
        snprintf(err, errlen, "cannot record the range in %s/userns: %s", tdir, strerror(errno));
        rc = -1;
      }
      if (fd >= 0) close(fd);
      if (dfd >= 0) close(dfd);
      /* only a hint (any content reads as a start): written in place, under the lock */
      int nfd = open(hint, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (nfd >= 0) {
        int hl = snprintf(hbuf, sizeof hbuf, "%lu\n", ((unsigned long)k + 1) % slots);
        write_all(nfd, hbuf, (size_t)hl);
        close(nfd);
      }
    }
    close(lfd);
    if (rc < 0) return -1;
  }
  if ((unsigned long)k >= slots) return snprintf(err, errlen, "sandbox %s holds range %ld, beyond velo's %lu in /etc/subuid", name, k, slots), -1;
  *uid = us + (unsigned long)k * USERNS_SIZE;
  *gid = gs + (unsigned long)k * USERNS_SIZE;
  return 0;
}

/* The first range of the user's line (by name or by uid) in an /etc/subuid-style file: 0, or -1 */
static int user_entry(const char *file, const char *user, unsigned long id, unsigned long *start, unsigned long *count) {
  FILE *f = fopen(file, "re");
  if (!f) return -1;
  char line[512], idtxt[24];
  snprintf(idtxt, sizeof idtxt, "%lu", id);
  int rc = -1;
  while (rc < 0 && fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (!colon) continue;
    *colon = 0;
    unsigned long s, c;
    if ((!strcmp(line, idtxt) || (user && !strcmp(line, user))) && sscanf(colon + 1, "%lu:%lu", &s, &c) == 2 && c > 0 && s + c <= 4294967295UL) {
      *start = s;
      *count = c;
      rc = 0;
    }
  }
  fclose(f);
  return rc;
}

int userns_rootless(struct tenant_ids *ids, char *err, size_t errlen, char *sug, size_t suglen) {
  uid_t uid = geteuid();
  gid_t gid = getegid();
  /* the name from /etc/passwd read directly: the front-end is linked statically, without NSS */
  char name[256] = "";
  FILE *pf = fopen("/etc/passwd", "re");
  char line[1024];
  while (pf && !*name && fgets(line, sizeof line, pf)) {
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c1 && c2 && strtoul(c2 + 1, NULL, 10) == uid && c2[1] >= '0' && c2[1] <= '9' && (size_t)(c1 - line) < sizeof name) snprintf(name, sizeof name, "%.*s", (int)(c1 - line), line);
  }
  if (pf) fclose(pf);
  const char *user = *name ? name : NULL;
  unsigned long us, uc, gs, gc;
  bool has_u = user_entry("/etc/subuid", user, uid, &us, &uc) == 0, has_g = user_entry("/etc/subgid", user, uid, &gs, &gc) == 0;
  if (!has_u || !has_g) {
    snprintf(err, errlen, "user %s (uid %u) has no range in %s for the sandbox's user namespace", user ? user : "?", (unsigned)uid,
             !has_u && !has_g ? "/etc/subuid and /etc/subgid" : !has_u ? "/etc/subuid" : "/etc/subgid");
    snprintf(sug, suglen, "ask an administrator to run: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s (a range no other user has)", user ? user : "USER");
    return -1;
  }
  struct idmap *m[2] = {&ids->uid, &ids->gid};
  unsigned long own[2] = {uid, gid}, start[2] = {us, gs}, count[2] = {uc, gc};
  for (int k = 0; k < 2; k++) {
    m[k]->n = 2;
    m[k]->c[0] = 0, m[k]->h[0] = own[k], m[k]->s[0] = 1;
    m[k]->c[1] = 1, m[k]->h[1] = start[k], m[k]->s[1] = count[k] < USERNS_SIZE - 1 ? count[k] : USERNS_SIZE - 1;
  }
  return 0;
}
