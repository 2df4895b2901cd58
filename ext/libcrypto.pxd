# OpenSSL libcrypto: EVP SHA-256 (uses the CPU's SHA extensions when present).
cdef extern from "<openssl/evp.h>" nogil:
    ctypedef struct EVP_MD_CTX:
        pass
    ctypedef struct EVP_MD:
        pass
    ctypedef struct ENGINE:
        pass
    EVP_MD_CTX *EVP_MD_CTX_new()
    void EVP_MD_CTX_free(EVP_MD_CTX *ctx)
    const EVP_MD *EVP_sha256()
    int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl)
    int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt)
    int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s)
