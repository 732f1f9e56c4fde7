/* The protocol features libfuse 3.14 (Debian 12) cannot express, set on the way out, in the only place every
 * reply passes: writev(2) on the /dev/fuse descriptor. This executable defines writev, so libfuse's calls
 * resolve here.
 *
 * FUSE passthrough (Linux >= 6.9, CONFIG_FUSE_PASSTHROUGH; libfuse 3.16 added it): the kernel reads an open
 * file straight from a backing file we register (the CAS object), so reads and mmap faults never come to the
 * daemon and run at the speed of the backing filesystem.
 *   - the FUSE_INIT reply gains FUSE_PASSTHROUGH in flags2 and max_stack_depth = 1 (the CAS objects must sit
 *     on a non-stacked filesystem; an overlay may still be stacked on top of this mount);
 *   - an open reply whose fh carries our tag (VELO_PT_TAG << 32 | backing id) gains FOPEN_PASSTHROUGH and
 *     the backing id, which the FUSE_DEV_IOC_BACKING_OPEN ioctl returned.
 * If the kernel does not accept passthrough, BACKING_OPEN fails and the daemon serves reads itself (splice)
 * as before: the feature can only speed things up.
 *
 * Idmapped mounts (Linux >= 6.12; libfuse 3.17 added it): a FUSE mount may be idmapped only when the server
 * says FUSE_ALLOW_IDMAP in its INIT reply (with default_permissions, which we always mount with). A tenant
 * in a user namespace of its own takes the image's mount idmapped as its overlay's lower layer, exactly as
 * it takes a farm. The flag is sent only when the kernel offered it, which init_exchange reads from the
 * INIT request itself (libfuse 3.14 keeps only the low 32 bits of the offer).
 *
 * Everything else is written unchanged. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "velo_fuse.h"

#define FUSE_INIT_EXT_FLAG (1u << 30)     /* flags2 is read only with this bit in flags */
#define FUSE_PASSTHROUGH_FLAG2 (1u << 5) /* FUSE_PASSTHROUGH is bit 37 of the 64-bit init flags */
#define FUSE_ALLOW_IDMAP_FLAG2 (1u << 8) /* FUSE_ALLOW_IDMAP is bit 40 */
#define FUSE_INIT_OPCODE 26
#define IN_HEADER_SIZE 40
#define INIT_IN_OFF_MAJOR 0
#define INIT_IN_OFF_FLAGS 12
#define INIT_IN_OFF_FLAGS2 16
#define FOPEN_PASSTHROUGH_FLAG (1u << 7)
#define INIT_OUT_SIZE 64
#define INIT_OFF_FLAGS 12
#define INIT_OFF_FLAGS2 32
#define INIT_OFF_MAX_STACK_DEPTH 36

struct velo_backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
#define VELO_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct velo_backing_map)
#define VELO_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

struct out_header {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};

struct open_out {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};

static volatile int want_passthrough; /* set before the session starts; read by writev */
static volatile int want_idmap;       /* set by init_exchange when the kernel offers FUSE_ALLOW_IDMAP */
static volatile int init_seen;

void passthrough_request(int on) { want_passthrough = on; }

int init_exchange(struct fuse_session *se) {
  struct fuse_buf buf = {0};
  int n = fuse_session_receive_buf(se, &buf);
  if (n <= 0) {
    free(buf.mem);
    return n < 0 ? n : -ENOTCONN;
  }
  /* before INIT libfuse never splices: the request is in buf.mem */
  if (!(buf.flags & FUSE_BUF_IS_FD) && buf.size >= IN_HEADER_SIZE + INIT_IN_OFF_FLAGS2 + 4) {
    const uint8_t *p = buf.mem;
    uint32_t opcode, major, flags, flags2;
    memcpy(&opcode, p + 4, 4);
    memcpy(&major, p + IN_HEADER_SIZE + INIT_IN_OFF_MAJOR, 4);
    memcpy(&flags, p + IN_HEADER_SIZE + INIT_IN_OFF_FLAGS, 4);
    memcpy(&flags2, p + IN_HEADER_SIZE + INIT_IN_OFF_FLAGS2, 4);
    want_idmap = opcode == FUSE_INIT_OPCODE && major == 7 && (flags & FUSE_INIT_EXT_FLAG) && (flags2 & FUSE_ALLOW_IDMAP_FLAG2);
  }
  fuse_session_process_buf(se, &buf);
  free(buf.mem);
  if (fuse_session_exited(se)) return -ENOTCONN;
  return want_idmap ? 1 : 0;
}

int passthrough_register(int dev_fd, int backing_fd) {
  struct velo_backing_map map = {.fd = backing_fd};
  int id = ioctl(dev_fd, VELO_DEV_IOC_BACKING_OPEN, &map);
  return id < 0 ? -errno : id;
}

void passthrough_unregister(int dev_fd, int id) {
  uint32_t u = (uint32_t)id;
  ioctl(dev_fd, VELO_DEV_IOC_BACKING_CLOSE, &u);
}

static ssize_t real_writev(int fd, const struct iovec *iov, int cnt) { return syscall(SYS_writev, fd, iov, cnt); }

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  if (cnt < 2 || iov[0].iov_len != sizeof(struct out_header) || ((const struct out_header *)iov[0].iov_base)->error != 0)
    return real_writev(fd, iov, cnt);
  if ((want_passthrough || want_idmap) && !init_seen && cnt == 2 && iov[1].iov_len == INIT_OUT_SIZE) {
    /* the first reply of a session is the one to FUSE_INIT (major 7) */
    uint8_t init[INIT_OUT_SIZE];
    memcpy(init, iov[1].iov_base, sizeof init);
    uint32_t major, flags, flags2, depth = 1;
    memcpy(&major, init, 4);
    init_seen = 1;
    if (major == 7) {
      memcpy(&flags, init + INIT_OFF_FLAGS, 4);
      memcpy(&flags2, init + INIT_OFF_FLAGS2, 4);
      flags |= FUSE_INIT_EXT_FLAG;
      if (want_passthrough) {
        flags2 |= FUSE_PASSTHROUGH_FLAG2;
        memcpy(init + INIT_OFF_MAX_STACK_DEPTH, &depth, 4);
      }
      if (want_idmap) flags2 |= FUSE_ALLOW_IDMAP_FLAG2;
      memcpy(init + INIT_OFF_FLAGS, &flags, 4);
      memcpy(init + INIT_OFF_FLAGS2, &flags2, 4);
      struct iovec v[2] = {iov[0], {.iov_base = init, .iov_len = sizeof init}};
      return real_writev(fd, v, 2);
    }
  }
  if (cnt == 2 && iov[1].iov_len == sizeof(struct open_out)) {
    struct open_out o;
    memcpy(&o, iov[1].iov_base, sizeof o);
    if ((o.fh >> 32) == VELO_PT_TAG) {
      o.backing_id = (int32_t)(o.fh & 0xffffffffu);
      o.open_flags |= FOPEN_PASSTHROUGH_FLAG;
      struct iovec v[2] = {iov[0], {.iov_base = &o, .iov_len = sizeof o}};
      return real_writev(fd, v, 2);
    }
  }
  return real_writev(fd, iov, cnt);
}
