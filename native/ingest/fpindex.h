/* A volume's fingerprint index: what each regular file of its data dir held when a snapshot or a restore last
 * saw it, keyed by the file's stat fingerprint, so the next snapshot hashes only files that changed and a restore
 * rewrites only paths that differ (docs/volumes.md, "Speed"). A cache, never the truth: a file whose fingerprint
 * (device, inode, size, mtime, ctime) differs from its record is read again, and a file that may have changed in
 * the kernel's writeback window before the pass is not recorded at all (git's "racy clean" rule, widened for
 * writes through shared mappings: fpindex.c racy_window). ctime cannot be set from user space, so a write,
 * truncate, chmod, chown, setxattr or rename-over after a record always shows.
 *
 * File format (written whole to a temp file, then renamed: a reader sees the old index or the new one):
 *   "VELOFPX1" u64 count, then count records of
 *   u32 path_len, path bytes (relative to the data dir, no NUL), u64 dev, ino, size, i64 mtime_sec,
 *   u32 mtime_nsec, i64 ctime_sec, u32 ctime_nsec, u8 blake3[32]          (little-endian, packed)
 * A missing, short or malformed index reads as empty: everything is hashed, as with no index. */
#ifndef VELO_FPINDEX_H
#define VELO_FPINDEX_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

struct fpindex {
  uint8_t *buf; /* the file's bytes */
  size_t len;
  const uint8_t **slots; /* open addressing: pointers to records (at their path_len) */
  size_t cap;            /* power of two */
  size_t count;
};

/* Load PATH (a missing file is an empty index). Returns 0; -1 with errno on a read error other than ENOENT.
 * A malformed file is reported on stderr once and reads as empty. */
int fpindex_load(struct fpindex *ix, const char *path);
void fpindex_free(struct fpindex *ix);

/* The BLAKE3 recorded for REL when ST matches its record's fingerprint, else NULL. */
const uint8_t *fpindex_lookup(const struct fpindex *ix, const char *rel, size_t rel_len, const struct stat *st);

struct fpindex_writer {
  FILE *f;
  char tmp[4200];
  char path[4096];
  uint64_t count;
  struct timespec cutoff; /* files changed at or after this are not recorded (racy) */
};

/* Start writing PATH (through PATH.tmp-PID). STARTED: when the caller began reading the tree; anything whose
 * ctime is within the racy window before it may have changed unseen (a clock tick; a dirty mapped page). */
int fpindex_writer_open(struct fpindex_writer *w, const char *path, const struct timespec *started);
/* Record REL (a regular file with no extended attributes, content HASH, as ST says). Skips racy files. */
int fpindex_writer_add(struct fpindex_writer *w, const char *rel, size_t rel_len, const struct stat *st, const uint8_t hash[32]);
/* fsync, rename into place. Returns 0 or -1 (errno). */
int fpindex_writer_commit(struct fpindex_writer *w);
void fpindex_writer_abort(struct fpindex_writer *w);

#endif
