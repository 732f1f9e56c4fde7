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
    for (unsigned long i = 0; i < slots && k < 0; i++) {
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
    }
    close(lfd);
    if (rc < 0) return -1;
  }
  if ((unsigned long)k >= slots) return snprintf(err, errlen, "sandbox %s holds range %ld, beyond velo's %lu in /etc/subuid", name, k, slots), -1;
  *uid = us + (unsigned long)k * USERNS_SIZE;
  *gid = gs + (unsigned long)k * USERNS_SIZE;
  return 0;
}
