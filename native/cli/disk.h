/* A tenant's disk: how much it may write into its own files (a project quota on its upper and work dirs) and
 * which block device its I/O limits apply to (the whole disk under the store's filesystem). Both are resolved
 * when the sandbox boots, from the store as it is then. */
#ifndef VELO_FRONT_DISK_H
#define VELO_FRONT_DISK_H
#include <stddef.h>

/* Project quota of `bytes` on DIR/SUB for each of subs (a tenant: its upper and work dirs; a volume: its data dir),
 * the project id being DIR's inode number (unique on one filesystem for as long as the dir lives). flag names the
 * option in messages. 0, or < 0 with a message that says what the store's filesystem lacks and how to enable it. */
int disk_quota_set(const char *dir, const char *const *subs, int n_subs, double bytes, const char *flag, char *err, size_t errlen);

/* The whole-disk block device (major:minor) holding the filesystem of path: the device cgroup throttling takes
 * (a partition is refused by blkio and io.max). < 0 with a message when there is none (tmpfs, overlay, a
 * network filesystem). */
int disk_block_device(const char *path, unsigned *major, unsigned *minor, char *err, size_t errlen);

#endif
