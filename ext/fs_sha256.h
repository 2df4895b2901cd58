/* SHA-256 for the native core: OpenSSL's EVP (SHA-NI/AVX2 when the CPU has them) when setup.py
 * found libcrypto (FASTSYNC_HAVE_OPENSSL), otherwise a portable implementation of FIPS 180-4
 * written here (~3-5x slower than SHA-NI, still without the GIL and without Python objects).
 *
 *   fs_sha256_ctx *fs_sha256_new(void);                       NULL when out of memory
 *   void fs_sha256_update(fs_sha256_ctx *, const void *, size_t);
 *   void fs_sha256_final(fs_sha256_ctx *, unsigned char md[32]);
 *   void fs_sha256_free(fs_sha256_ctx *);                     NULL is fine
 */
#ifndef FS_SHA256_H
#define FS_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef FASTSYNC_HAVE_OPENSSL
#define FS_HAVE_OPENSSL 1
#include <openssl/evp.h>

typedef EVP_MD_CTX fs_sha256_ctx;

static inline fs_sha256_ctx *fs_sha256_new(void) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return NULL;
    }
    return c;
}
static inline void fs_sha256_update(fs_sha256_ctx *c, const void *p, size_t n) { EVP_DigestUpdate(c, p, n); }
static inline void fs_sha256_final(fs_sha256_ctx *c, unsigned char *md) {
    unsigned int len = 0;
    EVP_DigestFinal_ex(c, md, &len);
}
static inline void fs_sha256_free(fs_sha256_ctx *c) { EVP_MD_CTX_free(c); }

#else
#define FS_HAVE_OPENSSL 0

typedef struct {
    uint32_t h[8];
    uint64_t bytes;          /* total length so far */
    unsigned char buf[64];   /* a partial block */
    size_t used;
} fs_sha256_ctx;

static const uint32_t fs_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define FS_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static inline void fs_sha256_blocks(uint32_t *h, const unsigned char *p, size_t nblocks) {
    uint32_t w[64], a, b, c, d, e, f, g, hh, t1, t2;
    int i;
    while (nblocks--) {
        for (i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
        for (i = 16; i < 64; i++) {
            uint32_t s0 = FS_ROR(w[i - 15], 7) ^ FS_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = FS_ROR(w[i - 2], 17) ^ FS_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
        for (i = 0; i < 64; i++) {
            t1 = hh + (FS_ROR(e, 6) ^ FS_ROR(e, 11) ^ FS_ROR(e, 25)) + ((e & f) ^ (~e & g)) + fs_sha256_k[i] + w[i];
            t2 = (FS_ROR(a, 2) ^ FS_ROR(a, 13) ^ FS_ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
        p += 64;
    }
}

static inline fs_sha256_ctx *fs_sha256_new(void) {
    static const uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    fs_sha256_ctx *c = (fs_sha256_ctx *)calloc(1, sizeof(fs_sha256_ctx));
    if (c != NULL)
        memcpy(c->h, init, sizeof(init));
    return c;
}

static inline void fs_sha256_update(fs_sha256_ctx *c, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    size_t take;
    c->bytes += n;
    if (c->used) {
        take = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->buf + c->used, p, take);
        c->used += take;
        p += take;
        n -= take;
        if (c->used < 64)
            return;
        fs_sha256_blocks(c->h, c->buf, 1);
        c->used = 0;
    }
    if (n >= 64) {
        fs_sha256_blocks(c->h, p, n / 64);
        p += n & ~(size_t)63;
        n &= 63;
    }
    memcpy(c->buf, p, n);
    c->used = n;
}

static inline void fs_sha256_final(fs_sha256_ctx *c, unsigned char *md) {
    uint64_t bits = c->bytes * 8;
    int i;
    c->buf[c->used++] = 0x80;
    if (c->used > 56) {
        memset(c->buf + c->used, 0, 64 - c->used);
        fs_sha256_blocks(c->h, c->buf, 1);
        c->used = 0;
    }
    memset(c->buf + c->used, 0, 56 - c->used);
    for (i = 0; i < 8; i++)
        c->buf[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    fs_sha256_blocks(c->h, c->buf, 1);
    for (i = 0; i < 32; i++)
        md[i] = (unsigned char)(c->h[i / 4] >> (24 - 8 * (i % 4)));
}

static inline void fs_sha256_free(fs_sha256_ctx *c) { free(c); }

#undef FS_ROR
#endif /* FASTSYNC_HAVE_OPENSSL */
#endif /* FS_SHA256_H */
