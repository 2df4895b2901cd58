# zlib: raw deflate for the ratio-oriented gzip levels (0 and 4-9) and crc32.
cdef extern from "<zlib.h>" nogil:
    ctypedef struct z_stream:
        unsigned char *next_in
        unsigned int avail_in
        unsigned char *next_out
        unsigned int avail_out
        const char *msg
        void *zalloc
        void *zfree
        void *opaque
    int Z_OK
    int Z_STREAM_END
    int Z_BUF_ERROR
    int Z_NO_FLUSH
    int Z_FINISH
    int Z_DEFLATED
    int Z_DEFAULT_STRATEGY
    int deflateInit2(z_stream *strm, int level, int method, int windowBits, int memLevel, int strategy)
    int deflate(z_stream *strm, int flush)
    int deflateEnd(z_stream *strm)
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len)
