/* gzip for the native core: ISA-L's igzip when setup.py found it (FASTSYNC_HAVE_ISAL), otherwise the
 * subset of the igzip API that ext/_native.pyx uses, implemented on zlib (inflate of gzip members;
 * raw deflate with the crc32/isize trailer, no header, for levels 1-3). The .pyx is the same code
 * either way; fs_inflate_end / fs_deflate_end release what the zlib version holds (no-ops on ISA-L).
 */
#ifndef FS_ISAL_H
#define FS_ISAL_H

#include <stdint.h>
#include <string.h>

#ifdef FASTSYNC_HAVE_ISAL
#define FS_HAVE_ISAL 1
#include <isa-l/igzip_lib.h>

static inline void fs_inflate_end(struct inflate_state *s) { (void)s; }
static inline void fs_deflate_end(struct isal_zstream *s) { (void)s; }

#else
#define FS_HAVE_ISAL 0
#include <zlib.h>

enum isal_block_state { ISAL_BLOCK_NEW_HDR = 0, ISAL_BLOCK_FINISH = 1 };
enum isal_zstate_state { ZSTATE_NEW_HDR = 0, ZSTATE_END = 1 };
enum {
    ISAL_DECOMP_OK = 0, ISAL_INVALID_BLOCK = -1, ISAL_INVALID_SYMBOL = -2, ISAL_INVALID_LOOKBACK = -3,
    ISAL_INVALID_WRAPPER = -4, ISAL_UNSUPPORTED_METHOD = -5, ISAL_INCORRECT_CHECKSUM = -6,
};
enum { IGZIP_GZIP_NO_HDR = 3, NO_FLUSH = 0, ISAL_GZIP = 1 };
/* level buffers are unused by zlib; keep them small */
enum { ISAL_DEF_LVL1_DEFAULT = 64, ISAL_DEF_LVL2_DEFAULT = 64, ISAL_DEF_LVL3_DEFAULT = 64 };

struct inflate_state {
    uint8_t *next_out;
    uint32_t avail_out;
    uint32_t total_out;
    uint8_t *next_in;
    uint32_t avail_in;
    int32_t read_in_length;
    enum isal_block_state block_state;
    uint32_t crc_flag;
    z_stream z;
    int zinit;               /* 1: z holds an inflate state; -1: inflateInit2 failed */
};

static inline void isal_inflate_init(struct inflate_state *s) {
    if (s->zinit == 1) {
        inflateReset(&s->z);
    } else {
        memset(&s->z, 0, sizeof(s->z));
        s->zinit = inflateInit2(&s->z, 16 + 15) == Z_OK ? 1 : -1;
    }
    s->next_in = s->next_out = NULL;
    s->avail_in = s->avail_out = s->total_out = 0;
    s->block_state = ISAL_BLOCK_NEW_HDR;
}

static inline int fs_zlib_inflate_error(const z_stream *z) {
    const char *m = z->msg ? z->msg : "";
    if (!strcmp(m, "incorrect header check") || !strcmp(m, "unknown header flags set"))
        return ISAL_INVALID_WRAPPER;
    if (!strcmp(m, "unknown compression method"))
        return ISAL_UNSUPPORTED_METHOD;
    if (!strcmp(m, "incorrect data check") || !strcmp(m, "incorrect length check"))
        return ISAL_INCORRECT_CHECKSUM;
    if (!strcmp(m, "invalid distance too far back") || !strcmp(m, "invalid distance code"))
        return ISAL_INVALID_LOOKBACK;
    if (!strcmp(m, "invalid literal/length code"))
        return ISAL_INVALID_SYMBOL;
    return ISAL_INVALID_BLOCK;
}

/* Inflate until the input is used up, the output is full or the member ends (block_state). */
static inline int isal_inflate(struct inflate_state *s) {
    int r;
    if (s->zinit != 1)
        return ISAL_INVALID_BLOCK;
    if (s->block_state == ISAL_BLOCK_FINISH)
        return ISAL_DECOMP_OK;
    s->z.next_in = s->next_in;
    s->z.avail_in = s->avail_in;
    s->z.next_out = s->next_out;
    s->z.avail_out = s->avail_out;
    r = inflate(&s->z, Z_NO_FLUSH);
    s->total_out += s->avail_out - s->z.avail_out;
    s->next_in = s->z.next_in;
    s->avail_in = s->z.avail_in;
    s->next_out = s->z.next_out;
    s->avail_out = s->z.avail_out;
    if (r == Z_STREAM_END) {
        s->block_state = ISAL_BLOCK_FINISH;
        return ISAL_DECOMP_OK;
    }
    if (r == Z_OK || r == Z_BUF_ERROR)
        return ISAL_DECOMP_OK;
    return r == Z_DATA_ERROR ? fs_zlib_inflate_error(&s->z) : ISAL_INVALID_BLOCK;
}

static inline void fs_inflate_end(struct inflate_state *s) {
    if (s != NULL && s->zinit == 1)
        inflateEnd(&s->z);
    if (s != NULL)
        s->zinit = 0;
}

struct isal_zstate {
    enum isal_zstate_state state;
};

struct isal_zstream {
    uint8_t *next_in;
    uint32_t avail_in;
    uint32_t total_in;
    uint8_t *next_out;
    uint32_t avail_out;
    uint32_t total_out;
    uint32_t level;
    uint32_t level_buf_size;
    uint8_t *level_buf;
    uint16_t end_of_stream;
    uint16_t flush;
    uint16_t gzip_flag;
    struct isal_zstate internal_state;
    z_stream z;
    int zinit;
    uint32_t crc, isize;
    unsigned char trailer[8];
    int trailer_left;        /* bytes of the trailer still to write, once deflate has ended */
};

static inline void isal_deflate_init(struct isal_zstream *s) {
    memset(s, 0, sizeof(*s));
}

/* Raw deflate of next_in at `level` (zlib's levels 1-3), then the gzip trailer; 0 on success. */
static inline int isal_deflate(struct isal_zstream *s) {
    uint32_t before_in, before_out;
    int r, i;
    if (s->zinit == 0) {
        if (deflateInit2(&s->z, (int)s->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return -1;
        s->zinit = 1;
        s->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    }
    if (s->internal_state.state == ZSTATE_END)
        return 0;
    if (s->trailer_left == 0) {
        before_in = s->avail_in;
        before_out = s->avail_out;
        s->z.next_in = s->next_in;
        s->z.avail_in = s->avail_in;
        s->z.next_out = s->next_out;
        s->z.avail_out = s->avail_out;
        r = deflate(&s->z, s->end_of_stream ? Z_FINISH : Z_NO_FLUSH);
        if (r == Z_STREAM_ERROR)
            return -1;
        if (before_in != s->z.avail_in)
            s->crc = (uint32_t)crc32(s->crc, s->next_in, before_in - s->z.avail_in);
        s->isize += before_in - s->z.avail_in;
        s->total_in += before_in - s->z.avail_in;
        s->total_out += before_out - s->z.avail_out;
        s->next_in = s->z.next_in;
        s->avail_in = s->z.avail_in;
        s->next_out = s->z.next_out;
        s->avail_out = s->z.avail_out;
        if (r != Z_STREAM_END)
            return 0;
        for (i = 0; i < 4; i++) {
            s->trailer[i] = (unsigned char)(s->crc >> (8 * i));
            s->trailer[4 + i] = (unsigned char)(s->isize >> (8 * i));
        }
        s->trailer_left = 8;
    }
    while (s->trailer_left && s->avail_out) {
        *s->next_out++ = s->trailer[8 - s->trailer_left--];
        s->avail_out--;
        s->total_out++;
    }
    if (s->trailer_left == 0)
        s->internal_state.state = ZSTATE_END;
    return 0;
}

static inline void fs_deflate_end(struct isal_zstream *s) {
    if (s != NULL && s->zinit == 1)
        deflateEnd(&s->z);
    if (s != NULL)
        s->zinit = 0;
}
#endif /* FASTSYNC_HAVE_ISAL */
#endif /* FS_ISAL_H */
