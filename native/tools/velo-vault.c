/* velo-vault: the kernel half of a volume's vault (docs/volumes.md, "The vault"): fscrypt v2 on the vault's own
 * ext4 (a loop-mounted image made with the encrypt feature), and the shutdown that makes a locked vault's open
 * files fail. Node derives and unwraps the key (src/volume/vault.ts); it reaches this tool on stdin only.
 *
 * Every call that acts on a mounted vault names the filesystem's device (DEV, "major:minor") and refuses unless the
 * path is the root of a mount of that very device, reached without a symlink: a wrong or swapped path never gets
 * the store's own filesystem shut down or one of the host's mounts detached.
 *
 *   velo-vault init DIR            < key   add the 64-byte master key to DIR's filesystem and make the empty DIR
 *                                          encrypted with it (v2 policy: AES-256-XTS contents, AES-256-CTS names,
 *                                          32-byte name padding); prints the key's identifier (hex)
 *   velo-vault add MNT DEV ID      < key   add the key to MNT's filesystem; refused unless its identifier is ID
 *   velo-vault status MNT DEV ID           prints the key's status there: present, absent or incomplete (removed,
 *                                          but files still open keep it)
 *   velo-vault remove MNT DEV ID           remove the key for every user (its secret wiped; the inodes and page
 *                                          cache of files nobody holds open evicted); prints "busy" when open
 *                                          files keep some until they close
 *   velo-vault shutdown MNT DEV            sync, then shut the filesystem down: every later call on a file of it,
 *                                          open descriptors included, fails with EIO
 *   velo-vault umount POINT DEV            detach the mount at POINT (MNT_DETACH): a bind of the vault, or the vault
 *
 * Exit 0 on success; otherwise "velo-vault: what: why" on stderr and exit 1 (2: the key's identifier is not ID). */
#include <fcntl.h>
#include <stdbool.h>
#include <linux/fscrypt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/openat2.h>
#include <linux/stat.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "../common/velo_err.h"

#define KEY_BYTES 64
/* the generic shutdown ioctl (ext4, xfs, f2fs: XFS_IOC_GOINGDOWN); not in the uapi headers as one name */
#define VAULT_IOC_SHUTDOWN _IOR('X', 125, uint32_t)
#define VAULT_SHUTDOWN_LOGFLUSH 1 /* flush the journal, then shut down */

struct key_arg {
  struct fscrypt_add_key_arg a;
  uint8_t raw[KEY_BYTES];
};

static int read_key(uint8_t *key, struct velo_err *e) {
  size_t got = 0;
  while (got < KEY_BYTES) {
    ssize_t n = read(0, key + got, KEY_BYTES - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return VELO_FAIL_ERRNO(e, "read the key from stdin");
    if (n == 0) return velo_fail(e, 0, "read the key from stdin: %zu of %d bytes", got, KEY_BYTES);
    got += (size_t)n;
  }
  uint8_t extra;
  if (read(0, &extra, 1) != 0) return velo_fail(e, 0, "read the key from stdin: more than %d bytes", KEY_BYTES);
  return 0;
}

static void hex(const uint8_t *b, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static int parse_id(const char *s, uint8_t id[FSCRYPT_KEY_IDENTIFIER_SIZE], struct velo_err *e) {
  if (strlen(s) != 2 * FSCRYPT_KEY_IDENTIFIER_SIZE || strspn(s, "0123456789abcdef") != strlen(s)) return velo_fail(e, 0, "key identifier %s: not %d hex digits", s, 2 * FSCRYPT_KEY_IDENTIFIER_SIZE);
  for (int i = 0; i < FSCRYPT_KEY_IDENTIFIER_SIZE; i++) sscanf(s + 2 * i, "%2hhx", &id[i]);
  return 0;
}

/* The root of a mount of device DEV at path (no symlink on the way): an O_PATH fd, or O_RDONLY for ioctls. */
static int open_vault(const char *path, const char *dev, bool for_ioctl, struct velo_err *e) {
  unsigned maj, min;
  char end;
  if (sscanf(dev, "%u:%u%c", &maj, &min, &end) != 2) return velo_fail(e, 0, "%s: not a major:minor device", dev);
  struct open_how how = {.flags = (for_ioctl ? O_RDONLY : O_PATH) | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "%s (a directory, reached without a symlink)", path);
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) < 0) {
    VELO_FAIL_ERRNO(e, "%s: statx", path);
    close(fd);
    return -1;
  }
  if (sx.stx_dev_major != maj || sx.stx_dev_minor != min || !(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) || !(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
    velo_fail(e, 0, "%s: not the root of a mount of the vault's filesystem (%s; found %u:%u)", path, dev, sx.stx_dev_major, sx.stx_dev_minor);
    close(fd);
    return -1;
  }
  return fd;
}

/* Add the key on stdin to the filesystem of fd; its identifier into id. */
static int add_key(int fd, const char *where, uint8_t id[FSCRYPT_KEY_IDENTIFIER_SIZE], struct velo_err *e) {
  struct key_arg *k = mmap(NULL, sizeof *k, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (k == MAP_FAILED) return VELO_FAIL_ERRNO(e, "allocate the key");
  (void)mlock(k, sizeof *k);                 /* best effort: never to swap */
  (void)madvise(k, sizeof *k, MADV_DONTDUMP); /* nor into a core dump */
  int rc = read_key(k->raw, e);
  if (rc == 0) {
    k->a.key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
    k->a.raw_size = KEY_BYTES;
    if (ioctl(fd, FS_IOC_ADD_ENCRYPTION_KEY, &k->a) < 0)
      rc = VELO_FAIL_ERRNO(e, "%s: add the vault's key (does the filesystem have the encrypt feature?)", where);
    else memcpy(id, k->a.key_spec.u.identifier, FSCRYPT_KEY_IDENTIFIER_SIZE);
  }
  explicit_bzero(k, sizeof *k);
  munmap(k, sizeof *k);
  return rc;
}

static int cmd_init(const char *dir, struct velo_err *e) {
  cleanup_fd int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return VELO_FAIL_ERRNO(e, "%s", dir);
  struct fscrypt_policy_v2 p = {.version = FSCRYPT_POLICY_V2,
                                .contents_encryption_mode = FSCRYPT_MODE_AES_256_XTS,
                                .filenames_encryption_mode = FSCRYPT_MODE_AES_256_CTS,
                                .flags = FSCRYPT_POLICY_FLAGS_PAD_32};
  if (add_key(fd, dir, p.master_key_identifier, e) < 0) return -1;
  if (ioctl(fd, FS_IOC_SET_ENCRYPTION_POLICY, &p) < 0) return VELO_FAIL_ERRNO(e, "%s: set its encryption policy (it must be an empty directory)", dir);
  char h[2 * FSCRYPT_KEY_IDENTIFIER_SIZE + 1];
  hex(p.master_key_identifier, FSCRYPT_KEY_IDENTIFIER_SIZE, h);
  printf("%s\n", h);
  return 0;
}

static int cmd_add(const char *mnt, const char *dev, const char *want, struct velo_err *e) {
  uint8_t wanted[FSCRYPT_KEY_IDENTIFIER_SIZE], got[FSCRYPT_KEY_IDENTIFIER_SIZE];
  if (parse_id(want, wanted, e) < 0) return -1;
  cleanup_fd int fd = open_vault(mnt, dev, true, e);
  if (fd < 0) return -1;
  if (add_key(fd, mnt, got, e) < 0) return -1;
  if (memcmp(got, wanted, sizeof got) != 0) {
    /* not the vault's key: take it out again, so nothing it names stays in the kernel */
    struct fscrypt_remove_key_arg r = {.key_spec = {.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER}};
    memcpy(r.key_spec.u.identifier, got, sizeof got);
    (void)ioctl(fd, FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS, &r);
    velo_fail(e, 0, "%s: the key is not the vault's (identifier %s expected)", mnt, want);
    return -2;
  }
  return 0;
}

static int cmd_status(const char *mnt, const char *dev, const char *id, struct velo_err *e) {
  struct fscrypt_get_key_status_arg a = {.key_spec = {.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER}};
  if (parse_id(id, a.key_spec.u.identifier, e) < 0) return -1;
  cleanup_fd int fd = open_vault(mnt, dev, true, e);
  if (fd < 0) return -1;
  if (ioctl(fd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, &a) < 0) return VELO_FAIL_ERRNO(e, "%s: the key's status", mnt);
  printf("%s\n", a.status == FSCRYPT_KEY_STATUS_PRESENT ? "present" : a.status == FSCRYPT_KEY_STATUS_INCOMPLETELY_REMOVED ? "incomplete" : "absent");
  return 0;
}

static int cmd_remove(const char *mnt, const char *dev, const char *id, struct velo_err *e) {
  struct fscrypt_remove_key_arg r = {.key_spec = {.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER}};
  if (parse_id(id, r.key_spec.u.identifier, e) < 0) return -1;
  cleanup_fd int fd = open_vault(mnt, dev, true, e);
  if (fd < 0) return -1;
  if (ioctl(fd, FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS, &r) < 0) {
    if (errno == ENOKEY) return 0; /* not there: already removed */
    return VELO_FAIL_ERRNO(e, "%s: remove the vault's key", mnt);
  }
  if (r.removal_status_flags & FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY) printf("busy\n");
  return 0;
}

static int cmd_shutdown(const char *mnt, const char *dev, struct velo_err *e) {
  cleanup_fd int fd = open_vault(mnt, dev, true, e);
  if (fd < 0) return -1;
  if (syncfs(fd) < 0 && errno != EIO) return VELO_FAIL_ERRNO(e, "%s: syncfs", mnt); /* EIO: shut down already */
  uint32_t how = VAULT_SHUTDOWN_LOGFLUSH;
  if (ioctl(fd, VAULT_IOC_SHUTDOWN, &how) < 0) return VELO_FAIL_ERRNO(e, "%s: shut its filesystem down", mnt);
  return 0;
}

static int cmd_umount(const char *point, const char *dev, struct velo_err *e) {
  cleanup_fd int fd = open_vault(point, dev, false, e);
  if (fd < 0) return -1;
  char p[64];
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
  if (umount2(p, MNT_DETACH) < 0) return VELO_FAIL_ERRNO(e, "%s: detach", point);
  return 0;
}

int main(int argc, char **argv) {
  struct velo_err e = {0};
  int rc;
  if (argc == 3 && !strcmp(argv[1], "init")) rc = cmd_init(argv[2], &e);
  else if (argc == 5 && !strcmp(argv[1], "add")) rc = cmd_add(argv[2], argv[3], argv[4], &e);
  else if (argc == 5 && !strcmp(argv[1], "status")) rc = cmd_status(argv[2], argv[3], argv[4], &e);
  else if (argc == 5 && !strcmp(argv[1], "remove")) rc = cmd_remove(argv[2], argv[3], argv[4], &e);
  else if (argc == 4 && !strcmp(argv[1], "shutdown")) rc = cmd_shutdown(argv[2], argv[3], &e);
  else if (argc == 4 && !strcmp(argv[1], "umount")) rc = cmd_umount(argv[2], argv[3], &e);
  else {
    fprintf(stderr, "usage: velo-vault init DIR | add MNT DEV ID | status MNT DEV ID | remove MNT DEV ID | shutdown MNT DEV | umount POINT DEV (a key on stdin)\n");
    return 1;
  }
  if (rc < 0) fprintf(stderr, "velo-vault: %s\n", e.msg);
  if (fflush(stdout) != 0) return 1;
  return rc == -2 ? 2 : rc < 0 ? 1 : 0;
}
