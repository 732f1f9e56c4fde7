/* velo's canonical extended-attribute block (docs/format.md "Extended attributes", src/manifest/xattrs.ts):
 *   u32le count ‖ count × (u32le name_len ‖ u32le value_len ‖ name ‖ value), names sorted bytewise, unique.
 * Header-only so velo-meta, velo-xattr and the FUSE daemon share one parser. The parser fails closed: any
 * length that does not add up, a NUL in a name, or overlayfs' own attributes (which must never reach an
 * overlay lower from data) make the whole block invalid. */
#ifndef VELO_XATTRS_H
#define VELO_XATTRS_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "velo_err.h"

#define VELO_XATTR_NAME_MAX 255
#define VELO_XATTR_SIZE_MAX 65536

struct velo_xattr_it {
  const uint8_t *p;
  size_t left;
  uint32_t remaining;
  char prev[VELO_XATTR_NAME_MAX + 1];
};

struct velo_xattr {
  char name[VELO_XATTR_NAME_MAX + 1]; /* NUL-terminated copy */
  const void *value;
  size_t value_len;
};

static inline uint32_t velo_xattr_rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* overlayfs interprets these in a lower/upper layer: velo never applies them from a manifest. */
static inline int velo_xattr_is_overlay(const char *name) {
  return strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0;
}

static inline int velo_xattrs_begin(struct velo_xattr_it *it, const void *block, size_t len, struct velo_err *err) {
  if (len < 4) return velo_fail(err, 0, "xattr block too short (%zu bytes)", len);
  it->p = (const uint8_t *)block + 4;
  it->left = len - 4;
  it->remaining = velo_xattr_rd32(block);
  it->prev[0] = 0;
  return 0;
}

/* 1 = *out filled, 0 = end (and the block was consumed exactly), < 0 = malformed. */
static inline int velo_xattrs_next(struct velo_xattr_it *it, struct velo_xattr *out, struct velo_err *err) {
  if (it->remaining == 0) return it->left == 0 ? 0 : velo_fail(err, 0, "xattr block has %zu trailing bytes", it->left);
  if (it->left < 8) return velo_fail(err, 0, "xattr block truncated");
  uint32_t nl = velo_xattr_rd32(it->p), vl = velo_xattr_rd32(it->p + 4);
  if (nl == 0 || nl > VELO_XATTR_NAME_MAX || vl > VELO_XATTR_SIZE_MAX || (size_t)nl + vl > it->left - 8)
    return velo_fail(err, 0, "xattr block has bad lengths");
  memcpy(out->name, it->p + 8, nl);
  out->name[nl] = 0;
  if (strlen(out->name) != nl) return velo_fail(err, 0, "xattr name contains NUL");
  if (it->prev[0] && strcmp(it->prev, out->name) >= 0) return velo_fail(err, 0, "xattr names not sorted/unique");
  if (velo_xattr_is_overlay(out->name)) return velo_fail(err, 0, "refusing overlayfs attribute %s", out->name);
  memcpy(it->prev, out->name, nl + 1);
  out->value = it->p + 8 + nl;
  out->value_len = vl;
  it->p += 8 + (size_t)nl + vl;
  it->left -= 8 + (size_t)nl + vl;
  it->remaining--;
  return 1;
}

#endif
