# ISA-L igzip (fs_isal.h): SIMD inflate and the fast deflate levels 1-3; the same API on zlib without ISA-L.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t

cdef extern from "fs_isal.h" nogil:
    int FS_HAVE_ISAL
    enum isal_block_state:
        ISAL_BLOCK_FINISH
    enum isal_zstate_state:
        ZSTATE_END
    struct isal_zstate:
        isal_zstate_state state
    struct isal_zstream:
        uint8_t *next_in
        uint32_t avail_in
        uint32_t total_in
        uint8_t *next_out
        uint32_t avail_out
        uint32_t total_out
        uint32_t level
        uint32_t level_buf_size
        uint8_t *level_buf
        uint16_t end_of_stream
        uint16_t flush
        uint16_t gzip_flag
        isal_zstate internal_state
    struct inflate_state:
        uint8_t *next_out
        uint32_t avail_out
        uint32_t total_out
        uint8_t *next_in
        uint32_t avail_in
        int32_t read_in_length
        isal_block_state block_state
        uint32_t crc_flag
    int IGZIP_GZIP_NO_HDR
    int NO_FLUSH
    int ISAL_GZIP
    int ISAL_DECOMP_OK
    int ISAL_INVALID_BLOCK
    int ISAL_INVALID_SYMBOL
    int ISAL_INVALID_LOOKBACK
    int ISAL_INVALID_WRAPPER
    int ISAL_UNSUPPORTED_METHOD
    int ISAL_INCORRECT_CHECKSUM
    int ISAL_DEF_LVL1_DEFAULT
    int ISAL_DEF_LVL2_DEFAULT
    int ISAL_DEF_LVL3_DEFAULT
    void isal_deflate_init(isal_zstream *stream)
    int isal_deflate(isal_zstream *stream)
    void isal_inflate_init(inflate_state *state)
    int isal_inflate(inflate_state *state)
    void fs_inflate_end(inflate_state *state)    # no-ops on ISA-L; zlib's inflateEnd/deflateEnd
    void fs_deflate_end(isal_zstream *stream)
