/* BLAKE2s (RFC 7693), keyed, for the deterministic To tag of sip/response.py to_tag:
 * hashlib.blake2s(material, key=key, digest_size=8).hexdigest(). Written from the
 * RFC's pseudo-code (section 3.2, 3.3, appendix C's reference structure); checked
 * against hashlib by tests/unit/test_speedups.py. */
#ifndef SR_BLAKE2S_H
#define SR_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const uint32_t sr_b2s_iv[8] = {
    0x6A09E667UL, 0xBB67AE85UL, 0x3C6EF372UL, 0xA54FF53AUL,
    0x510E527FUL, 0x9B05688CUL, 0x1F83D9ABUL, 0x5BE0CD19UL,
};

static const uint8_t sr_b2s_sigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

typedef struct {
    uint32_t h[8];
    uint32_t t[2];
    uint8_t buf[64];
    size_t buflen;
    size_t outlen;
} sr_b2s_state;

static inline uint32_t sr_rotr32(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t sr_load32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

#define SR_B2S_G(a, b, c, d, x, y)                 \
    do {                                           \
        v[a] = v[a] + v[b] + (x);                  \
        v[d] = sr_rotr32(v[d] ^ v[a], 16);         \
        v[c] = v[c] + v[d];                        \
        v[b] = sr_rotr32(v[b] ^ v[c], 12);         \
        v[a] = v[a] + v[b] + (y);                  \
        v[d] = sr_rotr32(v[d] ^ v[a], 8);          \
        v[c] = v[c] + v[d];                        \
        v[b] = sr_rotr32(v[b] ^ v[c], 7);          \
    } while (0)

static void sr_b2s_compress(sr_b2s_state *s, const uint8_t block[64], int last)
{
    uint32_t m[16], v[16];
    for (int i = 0; i < 16; i++)
        m[i] = sr_load32(block + 4 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = s->h[i];
        v[i + 8] = sr_b2s_iv[i];
    }
    v[12] ^= s->t[0];
    v[13] ^= s->t[1];
    if (last)
        v[14] = ~v[14];
    for (int r = 0; r < 10; r++) {
        const uint8_t *sg = sr_b2s_sigma[r];
        SR_B2S_G(0, 4, 8, 12, m[sg[0]], m[sg[1]]);
        SR_B2S_G(1, 5, 9, 13, m[sg[2]], m[sg[3]]);
        SR_B2S_G(2, 6, 10, 14, m[sg[4]], m[sg[5]]);
        SR_B2S_G(3, 7, 11, 15, m[sg[6]], m[sg[7]]);
        SR_B2S_G(0, 5, 10, 15, m[sg[8]], m[sg[9]]);
        SR_B2S_G(1, 6, 11, 12, m[sg[10]], m[sg[11]]);
        SR_B2S_G(2, 7, 8, 13, m[sg[12]], m[sg[13]]);
        SR_B2S_G(3, 4, 9, 14, m[sg[14]], m[sg[15]]);
    }
    for (int i = 0; i < 8; i++)
        s->h[i] ^= v[i] ^ v[i + 8];
}

static void sr_b2s_add(sr_b2s_state *s, uint32_t n)
{
    s->t[0] += n;
    if (s->t[0] < n)
        s->t[1]++;
}

static void sr_b2s_update(sr_b2s_state *s, const uint8_t *in, size_t len)
{
    while (len > 0) {
        if (s->buflen == 64) {
            /* Only a block known not to be the last one is compressed here. */
            sr_b2s_add(s, 64);
            sr_b2s_compress(s, s->buf, 0);
            s->buflen = 0;
        }
        size_t take = 64 - s->buflen;
        if (take > len)
            take = len;
        memcpy(s->buf + s->buflen, in, take);
        s->buflen += take;
        in += take;
        len -= take;
    }
}

/* Keyed state: parameter block word 0 = digest length | key length << 8 | fanout 1 |
 * depth 1 (RFC 7693 2.5); the key, zero-padded to a block, is the first block. */
static void sr_b2s_init(sr_b2s_state *s, size_t outlen, const uint8_t *key, size_t keylen)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < 8; i++)
        s->h[i] = sr_b2s_iv[i];
    s->h[0] ^= 0x01010000UL ^ ((uint32_t)keylen << 8) ^ (uint32_t)outlen;
    s->outlen = outlen;
    if (keylen > 0) {
        uint8_t block[64] = {0};
        memcpy(block, key, keylen);
        sr_b2s_update(s, block, 64);
    }
}

static void sr_b2s_final(sr_b2s_state *s, uint8_t *out)
{
    sr_b2s_add(s, (uint32_t)s->buflen);
    memset(s->buf + s->buflen, 0, 64 - s->buflen);
    sr_b2s_compress(s, s->buf, 1);
    for (size_t i = 0; i < s->outlen; i++)
        out[i] = (uint8_t)(s->h[i >> 2] >> (8 * (i & 3)));
}

#endif
