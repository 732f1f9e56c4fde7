/* A volume's fingerprint index: what each regular file of its data dir held when a snapshot or a restore last
 * saw it, keyed by the file's stat fingerprint, so the next snapshot hashes only files that changed and a restore
 * rewrites only paths that differ (docs/volumes.md, "Speed"). A cache, never the truth: a file whose fingerprint
 * (device, inode, size, mtime, ctime) differs from its record is read again, and a file that may have changed in
 * the kernel's writeback window before the pass is not recorded at all (git's "racy clean" rule, widened for
 * writes through shared mappings: fpindex.c racy_window). ctime cannot be set from user space, so a write,
 * truncate, chmod, chown, setxattr or rename-over after a record always shows.
 *
 * File format (written whole to a temp file, then renamed: a reader sees the old index or the new one):
 *   "VELOFPX2" u64 count, u64 flags, then count records of
 *   u32 path_len, path bytes (relative to the data dir, no NUL), u64 dev, ino, size, i64 mtime_sec,
 *   u32 mtime_nsec, i64 ctime_sec, u32 ctime_nsec, u32 st_mode, u8 vouched, u8 blake3[32]  (little-endian, packed)
 * flags bit 0, COMPLETE: every entry of the tree is recorded (directories, symlinks and the rest too, hash zero), so
 * an entry the index has and a pass does not find is gone — what a snapshot stored as a delta of the last one needs
 * (velo-ingest --delta). vouched 1: unchanged while the fingerprint matches, its content the hash (a regular file
 * velo-ingest stored; zeros for what is no regular file); 2: unchanged while the fingerprint matches, no hash (a file
 * left to the TypeScript side: extended attributes, a placeholder) — an extended attribute, like an owner or a mode,
 * cannot change without the ctime; 0: present only (changed within the racy window, or read while it changed). The older "VELOFPX1" (regular files only, all vouched, no st_mode) is still
 * read, as not complete.
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
  int version;           /* 1 or 2 */
  int complete;          /* every entry of the tree recorded (flags bit 0 of a version 2 index) */
  uint8_t *seen;         /* per slot, what a pass found there (fpindex_mark): 0 nothing, 1 an entry, 2 a directory */
};

/* Load PATH (a missing file is an empty index). Returns 0; -1 with errno on a read error other than ENOENT.
 * A malformed file is reported on stderr once and reads as empty. */
int fpindex_load(struct fpindex *ix, const char *path);
void fpindex_free(struct fpindex *ix);

/* The BLAKE3 recorded for REL when it is a regular file vouched for and ST matches its record's fingerprint, else NULL. */
const uint8_t *fpindex_lookup(const struct fpindex *ix, const char *rel, size_t rel_len, const struct stat *st);
/* REL's slot, or -1 when the index has no record of it. */
long fpindex_find(const struct fpindex *ix, const char *rel, size_t rel_len);
/* The record at SLOT when it is vouched for with a hash (1) and ST matches its fingerprint and st_mode: its BLAKE3
 * (zeros for what is not a regular file); else NULL. */
const uint8_t *fpindex_match(const struct fpindex *ix, long slot, const struct stat *st);
/* 1 when the record at SLOT is vouched for (1 or 2) and ST matches its fingerprint and st_mode: the entry is as the
 * index saw it. */
int fpindex_same(const struct fpindex *ix, long slot, const struct stat *st);
/* A pass found the entry of SLOT (a directory: IS_DIR). Threads may mark different slots at once. */
void fpindex_mark(struct fpindex *ix, long slot, int is_dir);
/* For each record no pass marked whose parent was marked as a directory (or is the root): what a delta whites out.
 * Those below a record gone with it are covered by its whiteout and not reported. */
void fpindex_each_gone(const struct fpindex *ix, void (*cb)(void *ctx, const char *rel, size_t rel_len), void *ctx);

struct fpindex_writer {
  FILE *f;
  char tmp[4200];
  char path[4096];
  uint64_t count;
  struct timespec cutoff; /* entries changed at or after this are not vouched for (racy) */
};

/* Start writing PATH (through PATH.tmp-PID). STARTED: when the caller began reading the tree; anything whose
 * ctime is within the racy window before it may have changed unseen (a clock tick; a dirty mapped page).
 * COMPLETE: the caller records every entry of the tree (fpindex_writer_seen for what is not a stored file). */
int fpindex_writer_open(struct fpindex_writer *w, const char *path, const struct timespec *started, int complete);
/* Record REL (a regular file with no extended attributes, content HASH, as ST says); a racy one as present only. */
int fpindex_writer_add(struct fpindex_writer *w, const char *rel, size_t rel_len, const struct stat *st, const uint8_t hash[32]);
/* Record REL (hash zero): vouched for (2) when VOUCHABLE and not racy — its st_mode, owner, times, size, extended
 * attributes and, for a symlink, its target cannot change without its ctime; present only (0) otherwise. */
int fpindex_writer_seen(struct fpindex_writer *w, const char *rel, size_t rel_len, const struct stat *st, int vouchable);
/* fsync, rename into place. Returns 0 or -1 (errno). */
int fpindex_writer_commit(struct fpindex_writer *w);
void fpindex_writer_abort(struct fpindex_writer *w);

#endif
