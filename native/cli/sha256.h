/* SHA-256 (FIPS 180-4), for the one digest the front-end needs: the name of a phantom skeleton, which
 * src/run/projection.ts derives with node:crypto. Small enough not to pull libcrypto into every start-up. */
#ifndef VELO_FRONT_SHA256_H
#define VELO_FRONT_SHA256_H
#include <stddef.h>
#include <stdint.h>

struct sha256 {
  uint32_t h[8];
  uint64_t len;
  uint8_t buf[64];
  size_t n;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[32]);

#endif
