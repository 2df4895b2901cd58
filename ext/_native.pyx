# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native core of fastsync: streaming SHA-256, gzip/zstd (re)compression, batch hardlinking.

Every loop over data runs inside ``with nogil`` so the orchestrator keeps both cores busy.
Library choices (measured on a 70 MB tar of the Python stdlib, one core):

* SHA-256: OpenSSL EVP (SHA-NI), ~1.7 GB/s, same engine as hashlib without its per-call locking.

Each library is optional at build time (setup.py probes for it; ``FEATURES`` says what was found):
without OpenSSL a built-in SHA-256 (ext/fs_sha256.h), without ISA-L zlib does every gzip level
(ext/fs_isal.h), without libzstd the Pipeline refuses zstd and fastsync/core/native.py hands those
streams to the zstandard package (ext/fs_zstd.h).
* gzip decode: ISA-L ``isal_inflate`` ~570 MB/s vs zlib ~240 MB/s, so ISA-L always.
* gzip encode: ISA-L levels 1-3 run at 270-520 MB/s (ratio 0.331-0.344) vs zlib level 6 at
  ~29 MB/s (ratio 0.296). ISA-L has no ratio-oriented levels, so levels 1-3 use ISA-L (speed)
  and levels 0 and 4-9 use zlib (ratio; 4-9 byte-identical to the Python backend's output).
* zstd: libzstd streaming API, single-threaded (the scheduler parallelises across layers).

The uncompressed stream always flows through a fixed-size block buffer, so the compressors see
the same calls whatever the caller's chunking: output is deterministic per backend and level.
"""
from libc.errno cimport errno, EEXIST, ENOENT, EXDEV, EPERM, EMLINK, EINTR, ENOSYS, EINVAL, EOPNOTSUPP
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free, realloc, calloc
from libc.string cimport memcpy, strlen, strcpy, strrchr, strerror, memcmp
from libc.stdio cimport snprintf
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from posix.unistd cimport close, read, write, link, unlink, getpid
from posix.fcntl cimport open as c_open, O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_CLOEXEC
from posix.stat cimport struct_stat, stat as c_stat, fstat, chmod, fchmod, mkdir, S_ISREG
from posix.mman cimport mmap, munmap, madvise, PROT_READ, MAP_SHARED, MAP_FAILED, MADV_SEQUENTIAL

cimport libcrypto as ssl
cimport libzstd as zstd
cimport libz as z
cimport libisal as isal

cdef extern from *:
    """
    #include <errno.h>
    static inline void set_errno(int e) { errno = e; }
    """
    void set_errno(int e) nogil

cdef extern from "<stdio.h>" nogil:
    int rename(const char *oldpath, const char *newpath)

cdef extern from "<unistd.h>" nogil:
    ssize_t copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out,
                            size_t length, unsigned int flags)

cdef extern from "<sys/sendfile.h>" nogil:
    ssize_t sendfile(int out_fd, int in_fd, int64_t *offset, size_t count)

cdef enum:
    NONE = 0
    GZIP = 1
    ZSTD = 2
    BLOCK = 256 * 1024          # uncompressed block handed to the compressors
    MAX_CALL = 1 << 30          # ISA-L/zlib take 32-bit lengths
    ZSTD_WORKERS = 1            # must equal ZSTD_THREADS in fastsync/native.py

GZIP_HEADER_LEN = 10


# Which library does each job in this build (setup.py probes for each; see ext/fs_*.h).
FEATURES = {
    "sha256": "openssl" if ssl.FS_HAVE_OPENSSL else "builtin",
    "gzip": "isa-l" if isal.FS_HAVE_ISAL else "zlib",
    "zstd": "libzstd" if zstd.FS_HAVE_ZSTD else None,
}


class Error(ValueError):
    """Corrupt or truncated compressed input (native.py re-raises it as CompressionError)."""


# ---------------------------------------------------------------------------------------------
# SHA-256

cdef struct Hasher:
    ssl.fs_sha256_ctx *ctx
    uint64_t size

cdef int hasher_init(Hasher *h) noexcept nogil:
    h.size = 0
    h.ctx = ssl.fs_sha256_new()
    return 0 if h.ctx != NULL else -1

cdef inline void hasher_update(Hasher *h, const unsigned char *p, size_t n) noexcept nogil:
    ssl.fs_sha256_update(h.ctx, p, n)
    h.size += n

cdef object hasher_final(Hasher *h):
    cdef unsigned char md[32]
    ssl.fs_sha256_final(h.ctx, md)
    return "sha256:" + PyBytes_FromStringAndSize(<char *>md, 32).hex(), h.size

cdef void hasher_free(Hasher *h) noexcept nogil:
    if h.ctx != NULL:
        ssl.fs_sha256_free(h.ctx)
        h.ctx = NULL


# ---------------------------------------------------------------------------------------------
# Growable output buffer (reset after every feed/finish: holds one call's output only)

cdef struct OutBuf:
    unsigned char *data
    size_t len
    size_t cap

cdef int ob_reserve(OutBuf *ob, size_t extra) noexcept nogil:
    cdef size_t want = ob.len + extra
    cdef size_t cap = ob.cap if ob.cap else 65536
    cdef unsigned char *p
    if want <= ob.cap:
        return 0
    while cap < want:
        cap *= 2
    p = <unsigned char *>realloc(ob.data, cap)
    if p == NULL:
        return -1
    ob.data = p
    ob.cap = cap
    return 0


cdef inline size_t copy_into(unsigned char *dst, size_t room, const unsigned char *src, size_t n,
                            size_t *advanced) noexcept nogil:
    cdef size_t k = n if n < room else room
    memcpy(dst, src, k)
    advanced[0] += k
    return k


cdef class Pipeline:
    """input --sha256--> [decompress] --sha256--> [compress] --sha256--> output, in one pass.

    src/dst: 0 none, 1 gzip, 2 zstd. ``collect`` false discards the output (pure digesting).
    """
    cdef int src, dst, level
    cdef bint collect, finished, any_input, in_member, busy
    cdef Hasher h_in, h_unc, h_out
    cdef unsigned char *blk
    cdef size_t blk_len
    cdef OutBuf ob
    cdef isal.inflate_state *inf
    cdef zstd.ZSTD_DCtx *dctx
    cdef size_t zret
    cdef isal.isal_zstream *zs
    cdef z.z_stream *zst
    cdef uint32_t crc
    cdef uint32_t isize
    cdef zstd.ZSTD_CCtx *cctx
    cdef char errmsg[256]
    cdef object result

    def __cinit__(self, int src, int dst, int level, bint collect):
        self.src, self.dst, self.level, self.collect = src, dst, level, collect
        if hasher_init(&self.h_in) or hasher_init(&self.h_unc) or hasher_init(&self.h_out):
            raise MemoryError()
        self.blk = <unsigned char *>malloc(BLOCK)
        if self.blk == NULL:
            raise MemoryError()
        if (src == ZSTD or dst == ZSTD) and not zstd.FS_HAVE_ZSTD:
            raise Error("zstd stream: this native core was built without libzstd")
        if src == GZIP:
            self.inf = <isal.inflate_state *>calloc(1, sizeof(isal.inflate_state))
            if self.inf == NULL:
                raise MemoryError()
        elif src == ZSTD:
            self.dctx = zstd.ZSTD_createDCtx()
            if self.dctx == NULL:
                raise MemoryError()
        if dst == GZIP:
            self._init_gzip()
        elif dst == ZSTD:
            self.cctx = zstd.ZSTD_createCCtx()
            if self.cctx == NULL:
                raise MemoryError()
            zstd.ZSTD_CCtx_setParameter(self.cctx, zstd.ZSTD_c_compressionLevel, level)
            zstd.ZSTD_CCtx_setParameter(self.cctx, zstd.ZSTD_c_checksumFlag, 1)
            # one worker thread: zstd compresses while this thread inflates and hashes (two cores
            # busy for a recompression). The output no longer depends on how many workers run.
            zstd.ZSTD_CCtx_setParameter(self.cctx, zstd.ZSTD_c_nbWorkers, ZSTD_WORKERS)

    cdef _init_gzip(self):
        cdef unsigned char hdr[10]
        cdef int lvlbuf = 0
        hdr[:] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2 if self.level == 9 else (4 if self.level == 1 else 0), 255]
        if ob_reserve(&self.ob, 10):
            raise MemoryError()
        memcpy(self.ob.data, hdr, 10)
        self.ob.len = 10
        if 1 <= self.level <= 3:
            self.zs = <isal.isal_zstream *>calloc(1, sizeof(isal.isal_zstream))
            if self.zs == NULL:
                raise MemoryError()
            isal.isal_deflate_init(self.zs)
            lvlbuf = (isal.ISAL_DEF_LVL1_DEFAULT, isal.ISAL_DEF_LVL2_DEFAULT, isal.ISAL_DEF_LVL3_DEFAULT)[self.level - 1]
            self.zs.level = self.level
            self.zs.level_buf = <uint8_t *>malloc(lvlbuf)
            self.zs.level_buf_size = lvlbuf
            self.zs.gzip_flag = isal.IGZIP_GZIP_NO_HDR  # we write the header; ISA-L writes crc+isize
            self.zs.flush = isal.NO_FLUSH
            if self.zs.level_buf == NULL:
                raise MemoryError()
        else:
            self.zst = <z.z_stream *>calloc(1, sizeof(z.z_stream))
            if self.zst == NULL:
                raise MemoryError()
            if z.deflateInit2(self.zst, self.level, z.Z_DEFLATED, -15, 8, z.Z_DEFAULT_STRATEGY) != z.Z_OK:
                free(self.zst)
                self.zst = NULL
                raise MemoryError()
            self.crc = z.crc32(0, NULL, 0)

    def __dealloc__(self):
        hasher_free(&self.h_in)
        hasher_free(&self.h_unc)
        hasher_free(&self.h_out)
        free(self.blk)
        free(self.ob.data)
        if self.inf != NULL:
            isal.fs_inflate_end(self.inf)
            free(self.inf)
        if self.dctx != NULL:
            zstd.ZSTD_freeDCtx(self.dctx)
        if self.cctx != NULL:
            zstd.ZSTD_freeCCtx(self.cctx)
        if self.zs != NULL:
            isal.fs_deflate_end(self.zs)
            free(self.zs.level_buf)
            free(self.zs)
        if self.zst != NULL:
            z.deflateEnd(self.zst)
            free(self.zst)

    # -- the data path (all nogil) --------------------------------------------------------

    cdef int fail(self, const char *what, const char *detail) noexcept nogil:
        snprintf(self.errmsg, sizeof(self.errmsg), "%s stream: %s (after %llu input bytes)",
                 what, detail, <unsigned long long>self.h_in.size)
        return -1

    cdef int compress(self, const unsigned char *p, size_t n, bint final) noexcept nogil:
        """Feed one uncompressed block to the output side."""
        cdef zstd.ZSTD_inBuffer zin
        cdef zstd.ZSTD_outBuffer zout
        cdef size_t r, room
        cdef int zr
        if self.src != NONE:
            hasher_update(&self.h_unc, p, n)
        if self.dst == NONE:
            if self.collect:
                if ob_reserve(&self.ob, n):
                    return self.fail("output", "out of memory")
                memcpy(self.ob.data + self.ob.len, p, n)
                self.ob.len += n
            return 0
        if self.dst == ZSTD:
            zin.src = p
            zin.size = n
            zin.pos = 0
            while True:
                room = zstd.ZSTD_CStreamOutSize()
                if ob_reserve(&self.ob, room):
                    return self.fail("output", "out of memory")
                zout.dst = self.ob.data + self.ob.len
                zout.size = room
                zout.pos = 0
                r = zstd.ZSTD_compressStream2(self.cctx, &zout, &zin,
                                              zstd.ZSTD_e_end if final else zstd.ZSTD_e_continue)
                self.ob.len += zout.pos
                if zstd.ZSTD_isError(r):
                    return self.fail("zstd output", zstd.ZSTD_getErrorName(r))
                if (r == 0) if final else (zin.pos == zin.size):
                    return 0
        if self.zs != NULL:  # ISA-L deflate
            self.zs.next_in = <uint8_t *>p
            self.zs.avail_in = <uint32_t>n
            self.zs.end_of_stream = final
            while True:
                room = n // 2 + 65536
                if ob_reserve(&self.ob, room):
                    return self.fail("output", "out of memory")
                self.zs.next_out = self.ob.data + self.ob.len
                self.zs.avail_out = <uint32_t>room
                if isal.isal_deflate(self.zs) != 0:
                    return self.fail("gzip output", "isal_deflate failed")
                self.ob.len += room - self.zs.avail_out
                if self.zs.avail_in == 0 and (not final or self.zs.internal_state.state == isal.ZSTATE_END):
                    return 0
        # zlib raw deflate + our own trailer
        if n:  # crc32(crc, buf, 0) is fine, but zlib resets on a NULL buffer
            self.crc = z.crc32(self.crc, p, <unsigned int>n)
        self.isize += <uint32_t>n
        self.zst.next_in = <unsigned char *>p
        self.zst.avail_in = <unsigned int>n
        while True:
            room = n // 2 + 65536
            if ob_reserve(&self.ob, room + 8):
                return self.fail("output", "out of memory")
            self.zst.next_out = self.ob.data + self.ob.len
            self.zst.avail_out = <unsigned int>room
            zr = z.deflate(self.zst, z.Z_FINISH if final else z.Z_NO_FLUSH)
            self.ob.len += room - self.zst.avail_out
            if zr != z.Z_OK and zr != z.Z_STREAM_END and zr != z.Z_BUF_ERROR:
                return self.fail("gzip output", "deflate failed")
            if final and zr == z.Z_STREAM_END:
                for r in range(4):
                    self.ob.data[self.ob.len + r] = (self.crc >> (8 * r)) & 0xff
                    self.ob.data[self.ob.len + 4 + r] = (self.isize >> (8 * r)) & 0xff
                self.ob.len += 8
                return 0
            if not final and self.zst.avail_in == 0 and self.zst.avail_out != 0:
                return 0

    cdef inline int block_ready(self) noexcept nogil:
        """Called when the block buffer may be full: hand it on."""
        if self.blk_len == BLOCK:
            self.blk_len = 0
            return self.compress(self.blk, BLOCK, False)
        return 0

    cdef int inflate(self, const unsigned char *p, size_t n) noexcept nogil:
        cdef isal.inflate_state *s = self.inf
        cdef int ret
        cdef uint8_t *keep_in
        cdef uint32_t keep_avail
        s.next_in = <uint8_t *>p
        s.avail_in = <uint32_t>n
        while True:
            if not self.in_member:
                if s.avail_in == 0:
                    return 0
                keep_in = s.next_in
                keep_avail = s.avail_in
                isal.isal_inflate_init(s)
                s.crc_flag = isal.ISAL_GZIP
                s.next_in = keep_in
                s.avail_in = keep_avail
                self.in_member = True
            s.next_out = self.blk + self.blk_len
            s.avail_out = <uint32_t>(BLOCK - self.blk_len)
            keep_avail = s.avail_in
            ret = isal.isal_inflate(s)
            if ret == isal.ISAL_DECOMP_OK and s.avail_in == keep_avail and \
                    s.avail_out == BLOCK - self.blk_len and keep_avail and s.block_state != isal.ISAL_BLOCK_FINISH:
                ret = -100  # no progress on non-empty input: never loop forever
            self.blk_len = BLOCK - s.avail_out
            if ret != isal.ISAL_DECOMP_OK:
                return self.fail("gzip", inflate_error(ret))
            if s.avail_out == 0:
                if self.block_ready():
                    return -1
                continue
            if s.block_state == isal.ISAL_BLOCK_FINISH:
                self.in_member = False
                continue
            if s.avail_in == 0:
                return 0

    cdef int unzstd(self, const unsigned char *p, size_t n) noexcept nogil:
        cdef zstd.ZSTD_inBuffer zin
        cdef zstd.ZSTD_outBuffer zout
        cdef size_t r
        zin.src = p
        zin.size = n
        zin.pos = 0
        while True:
            zout.dst = self.blk + self.blk_len
            zout.size = BLOCK - self.blk_len
            zout.pos = 0
            r = zstd.ZSTD_decompressStream(self.dctx, &zout, &zin)
            self.blk_len += zout.pos
            if zstd.ZSTD_isError(r):
                return self.fail("zstd", zstd.ZSTD_getErrorName(r))
            self.zret = r
            if self.blk_len == BLOCK:
                if self.block_ready():
                    return -1
            elif zin.pos == zin.size:
                return 0
            if r == 0 and zin.pos == zin.size:
                return 0  # frame done and flushed: another call would start a new frame

    cdef int feed_c(self, const unsigned char *p, size_t n) noexcept nogil:
        cdef size_t take, part
        hasher_update(&self.h_in, p, n)
        if n:
            self.any_input = True
        while n:
            take = n if n < MAX_CALL else MAX_CALL
            if self.src == GZIP:
                if self.inflate(p, take):
                    return -1
            elif self.src == ZSTD:
                if self.unzstd(p, take):
                    return -1
            elif self.dst == NONE:
                if self.collect and self.compress(p, take, False):
                    return -1
            else:
                part = 0
                while part < take:
                    self.blk_len += copy_into(self.blk + self.blk_len, BLOCK - self.blk_len, p + part, take - part, &part)
                    if self.block_ready():
                        return -1
            p += take
            n -= take
        return 0

    cdef int finish_c(self) noexcept nogil:
        if self.src == GZIP and (self.in_member or not self.any_input):
            return self.fail("gzip", "unexpected end of data" if self.any_input else "no data")
        if self.src == ZSTD and (self.zret != 0 or not self.any_input):
            return self.fail("zstd", "unexpected end of data" if self.any_input else "no data")
        cdef size_t n = self.blk_len
        self.blk_len = 0
        # the last data with a plain call, then an empty finishing call: the same call sequence
        # as the Python backend (zlib's stored level would otherwise differ in the BFINAL bit)
        if n and self.compress(self.blk, n, False):
            return -1
        return self.compress(self.blk, 0, True)

    cdef object take_output(self):
        if self.dst != NONE and self.ob.len:
            with nogil:
                hasher_update(&self.h_out, self.ob.data, self.ob.len)
        out = PyBytes_FromStringAndSize(<char *>self.ob.data, self.ob.len) if self.ob.len else b""
        self.ob.len = 0
        return out

    # -- Python API -------------------------------------------------------------------------

    cdef enter(self, bint finishing):
        if self.busy:
            raise RuntimeError("Pipeline used from two threads at once")
        if self.finished:
            raise ValueError("finish() called twice" if finishing else "feed() after finish() or an error")
        self.busy = True

    def feed(self, data):
        cdef const unsigned char[::1] view = data
        cdef const unsigned char *p = &view[0] if view.shape[0] else NULL
        cdef size_t n = view.shape[0]
        cdef int rc
        self.enter(False)
        try:
            with nogil:
                rc = self.feed_c(p, n)
            if rc:
                self.finished = True
                raise Error(self.errmsg.decode())
            return self.take_output()
        finally:
            self.busy = False

    def finish(self):
        cdef int rc
        self.enter(True)
        self.finished = True
        try:
            with nogil:
                rc = self.finish_c()
            if rc:
                raise Error(self.errmsg.decode())
            return self.take_output()
        finally:
            self.busy = False

    def digests(self):
        """((input), (uncompressed), (output)) as (digest, size) pairs, after finish()."""
        if not self.finished or self.busy:
            raise ValueError("digests() before finish()")
        if self.result is None:
            inp = hasher_final(&self.h_in)
            unc = hasher_final(&self.h_unc) if self.src != NONE else inp
            out = hasher_final(&self.h_out) if self.dst != NONE else unc
            self.result = (inp, unc, out)
        return self.result


cdef const char *inflate_error(int ret) noexcept nogil:
    if ret == isal.ISAL_INVALID_WRAPPER:
        return "invalid gzip header"
    if ret == isal.ISAL_UNSUPPORTED_METHOD:
        return "unsupported compression method"
    if ret == isal.ISAL_INCORRECT_CHECKSUM:
        return "CRC32 or size mismatch"
    if ret == isal.ISAL_INVALID_LOOKBACK:
        return "invalid deflate distance"
    if ret == isal.ISAL_INVALID_SYMBOL:
        return "invalid deflate symbol"
    if ret > 0:
        return "unexpected decoder state"
    return "invalid deflate block"


# ---------------------------------------------------------------------------------------------
# Whole-file SHA-256 over an mmap

def sha256_file(bytes path):
    cdef const char *cpath = path
    cdef int fd, err = 0
    cdef struct_stat st
    cdef Hasher h
    cdef void *m
    cdef size_t size, off, step
    if hasher_init(&h):
        raise MemoryError()
    with nogil:
        fd = c_open(cpath, O_RDONLY | O_CLOEXEC)
        if fd < 0 or fstat(fd, &st) != 0:
            err = errno
        else:
            size = st.st_size
            if size:
                m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)
                if m == MAP_FAILED:
                    err = errno
                else:
                    madvise(m, size, MADV_SEQUENTIAL)
                    off = 0
                    while off < size:
                        step = size - off if size - off < (64 << 20) else (64 << 20)
                        hasher_update(&h, <const unsigned char *>m + off, step)
                        off += step
                    munmap(m, size)
        if fd >= 0:
            close(fd)
    if err:
        hasher_free(&h)
        raise OSError(err, strerror(err).decode(), path.decode(errors="surrogateescape"))
    res = hasher_final(&h)
    hasher_free(&h)
    return res


# ---------------------------------------------------------------------------------------------
# Batch hardlinking

cdef int mkdirs(char *path) noexcept nogil:
    """mkdir -p on a writable NUL-terminated path (restored on return)."""
    cdef char *slash
    if mkdir(path, 0o755) == 0 or errno == EEXIST:
        return 0
    if errno != ENOENT:
        return -1
    slash = strrchr(path, b'/')
    if slash == NULL or slash == path:
        return -1
    slash[0] = 0
    cdef int rc = mkdirs(path)
    slash[0] = b'/'
    if rc:
        return -1
    if mkdir(path, 0o755) == 0 or errno == EEXIST:
        return 0
    return -1


cdef int copy_fd(int src, int dst, size_t size) noexcept nogil:
    cdef ssize_t n
    cdef size_t done = 0
    cdef char buf[65536]
    cdef bint cfr = True, sf = True
    while done < size:
        if cfr:
            n = copy_file_range(src, NULL, dst, NULL, size - done, 0)
            if n < 0 and errno in (ENOSYS, EXDEV, EINVAL, EOPNOTSUPP, EPERM):
                cfr = False
                continue
        elif sf:
            n = sendfile(dst, src, NULL, size - done)
            if n < 0 and errno in (ENOSYS, EINVAL):
                sf = False
                continue
        else:
            n = read(src, buf, sizeof(buf))
            if n > 0 and write(dst, buf, n) != n:
                return -1
        if n < 0:
            if errno == EINTR:
                continue
            return -1
        if n == 0:
            break  # file shrank
        done += n
    return 0


cdef int copy_file(const char *src, const char *tmp, bint readonly) noexcept nogil:
    cdef struct_stat st
    cdef int fs, fd, rc = -1, saved
    fs = c_open(src, O_RDONLY | O_CLOEXEC)
    if fs < 0:
        return -1
    if fstat(fs, &st) != 0:
        saved = errno
        close(fs)
        set_errno(saved)
        return -1
    fd = c_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    if fd >= 0:
        if copy_fd(fs, fd, st.st_size) == 0 and fchmod(fd, 0o444 if readonly else (st.st_mode & 0o777)) == 0:
            rc = 0
        saved = errno
        if close(fd) != 0 and rc == 0:
            saved = errno
            rc = -1
        if rc:
            unlink(tmp)
        set_errno(saved)
    saved = errno
    close(fs)
    set_errno(saved)
    return rc


cdef int link_one(const char *src, char *dst, char *tmp, size_t tmpcap, bint readonly,
                  unsigned long *counter, int *linked, const char **bad) noexcept nogil:
    cdef struct_stat s1, s2
    cdef char *slash
    cdef int e, rc
    bad[0] = dst
    rc = link(src, dst)
    if rc != 0 and errno == ENOENT:
        slash = strrchr(dst, b'/')
        if slash != NULL and slash != dst:
            slash[0] = 0
            rc = mkdirs(dst)
            slash[0] = b'/'
            if rc:
                return -1
            rc = link(src, dst)
    if rc == 0:
        linked[0] = 1
        return chmod(dst, 0o444) if readonly else 0
    e = errno
    if e == ENOENT:
        if c_stat(src, &s1) != 0:
            bad[0] = src
        set_errno(e)
        return -1
    if e == EEXIST:
        if c_stat(src, &s1) != 0:
            bad[0] = src
            return -1
        if c_stat(dst, &s2) == 0 and s1.st_dev == s2.st_dev and s1.st_ino == s2.st_ino:
            linked[0] = 1
            return chmod(dst, 0o444) if readonly and (s1.st_mode & 0o222) else 0
    elif e != EXDEV and e != EPERM and e != EMLINK:
        set_errno(e)
        return -1
    # build the file under a temp name beside dst, then rename over it (atomic replace)
    while True:
        counter[0] += 1
        snprintf(tmp, tmpcap, "%s.%d.%lu.tmp", dst, <int>getpid(), counter[0])
        if e == EEXIST:
            if link(src, tmp) == 0:
                linked[0] = 1
                if readonly and chmod(tmp, 0o444) != 0:
                    e = errno
                    unlink(tmp)
                    set_errno(e)
                    return -1
                break
            if errno == EEXIST:
                continue
            e = errno
            if e != EXDEV and e != EPERM and e != EMLINK:
                return -1
        if copy_file(src, tmp, readonly) == 0:
            linked[0] = 0
            break
        e = errno
        if e != EEXIST:
            if c_stat(src, &s1) != 0:
                bad[0] = src
            set_errno(e)
            return -1
    if rename(tmp, dst) != 0:
        e = errno
        unlink(tmp)
        set_errno(e)
        return -1
    return 0


def link_blobs(list pairs, bint readonly=True):
    """pairs: list of (src: bytes, dst: bytes). Returns how many were hardlinked."""
    cdef Py_ssize_t n = len(pairs), i, maxlen = 0
    cdef const char **srcs = <const char **>malloc((n + 1) * sizeof(char *))
    cdef const char **dsts = <const char **>malloc((n + 1) * sizeof(char *))
    cdef char *dbuf = NULL
    cdef char *tmp = NULL
    cdef const char *bad = NULL
    cdef unsigned long counter = 0
    cdef int linked = 0, total = 0, rc = 0, err = 0
    keep = []
    try:
        if srcs == NULL or dsts == NULL:
            raise MemoryError()
        for i in range(n):
            s, d = pairs[i]
            if not isinstance(s, bytes) or not isinstance(d, bytes):
                raise TypeError("link_blobs expects (bytes, bytes) pairs")
            keep.append(s)
            keep.append(d)
            srcs[i] = PyBytes_AS_STRING(s)
            dsts[i] = PyBytes_AS_STRING(d)
            maxlen = max(maxlen, len(d))
        dbuf = <char *>malloc(maxlen + 1)
        tmp = <char *>malloc(maxlen + 64)
        if dbuf == NULL or tmp == NULL:
            raise MemoryError()
        with nogil:
            for i in range(n):
                strcpy(dbuf, dsts[i])
                linked = 0
                rc = link_one(srcs[i], dbuf, tmp, maxlen + 64, readonly, &counter, &linked, &bad)
                if rc:
                    err = errno
                    break
                total += linked
        if rc:
            which = keep[2 * i] if bad == srcs[i] else keep[2 * i + 1]
            raise OSError(err, strerror(err).decode(), which.decode(errors="surrogateescape"))
        return total
    finally:
        free(srcs)
        free(dsts)
        free(dbuf)
        free(tmp)
