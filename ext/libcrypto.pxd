# SHA-256 (fs_sha256.h): OpenSSL EVP (SHA-NI when present) if setup.py found libcrypto, else built in.
cdef extern from "fs_sha256.h" nogil:
    ctypedef struct fs_sha256_ctx:
        pass
    int FS_HAVE_OPENSSL
    fs_sha256_ctx *fs_sha256_new()
    void fs_sha256_update(fs_sha256_ctx *c, const void *p, size_t n)
    void fs_sha256_final(fs_sha256_ctx *c, unsigned char *md)
    void fs_sha256_free(fs_sha256_ctx *c)
