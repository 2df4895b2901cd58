/* zstd for the native core: libzstd's streaming API when setup.py found it (FASTSYNC_HAVE_ZSTD).
 * Without it the declarations below only let ext/_native.pyx compile: Pipeline refuses zstd
 * (FS_HAVE_ZSTD is 0) and fastsync/core/native.py runs zstd streams through the zstandard package.
 */
#ifndef FS_ZSTD_H
#define FS_ZSTD_H

#ifdef FASTSYNC_HAVE_ZSTD
#define FS_HAVE_ZSTD 1
#include <zstd.h>

#else
#define FS_HAVE_ZSTD 0
#include <stddef.h>

typedef struct fs_no_zstd ZSTD_CCtx;
typedef struct fs_no_zstd ZSTD_DCtx;
typedef struct { const void *src; size_t size; size_t pos; } ZSTD_inBuffer;
typedef struct { void *dst; size_t size; size_t pos; } ZSTD_outBuffer;
typedef enum { ZSTD_c_compressionLevel = 100, ZSTD_c_checksumFlag = 201, ZSTD_c_nbWorkers = 400 } ZSTD_cParameter;
typedef enum { ZSTD_e_continue = 0, ZSTD_e_flush = 1, ZSTD_e_end = 2 } ZSTD_EndDirective;

static inline unsigned ZSTD_isError(size_t code) { (void)code; return 1; }
static inline const char *ZSTD_getErrorName(size_t code) { (void)code; return "built without libzstd"; }
static inline ZSTD_CCtx *ZSTD_createCCtx(void) { return NULL; }
static inline size_t ZSTD_freeCCtx(ZSTD_CCtx *c) { (void)c; return 0; }
static inline size_t ZSTD_CCtx_setParameter(ZSTD_CCtx *c, ZSTD_cParameter p, int v) { (void)c; (void)p; (void)v; return 1; }
static inline size_t ZSTD_compressStream2(ZSTD_CCtx *c, ZSTD_outBuffer *o, ZSTD_inBuffer *i, ZSTD_EndDirective e) {
    (void)c; (void)o; (void)i; (void)e; return 1;
}
static inline size_t ZSTD_CStreamOutSize(void) { return 1 << 17; }
static inline ZSTD_DCtx *ZSTD_createDCtx(void) { return NULL; }
static inline size_t ZSTD_freeDCtx(ZSTD_DCtx *d) { (void)d; return 0; }
static inline size_t ZSTD_decompressStream(ZSTD_DCtx *d, ZSTD_outBuffer *o, ZSTD_inBuffer *i) {
    (void)d; (void)o; (void)i; return 1;
}
#endif /* FASTSYNC_HAVE_ZSTD */
#endif /* FS_ZSTD_H */
