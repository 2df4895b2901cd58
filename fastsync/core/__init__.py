"""The hot paths and the blob pipeline's stages.

native.py     the backend in use: compiled ``_native`` (from ext/) or the pure-Python twin (pure.py)
codec.py      what both share: block size, compression codes and levels, result and error types
pipeline.py   async stages a blob streams through: verify, count, tee, verify a local file
recompress.py layer (re)compression for --dest-compress* (what to change, and the streaming pass)

May import: the vocabulary modules (fastsync.model, manifest, reference, options, errors, progress, retry).
"""
