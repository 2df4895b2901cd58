"""The content-addressed cache shared by runs: blobs by digest, manifests, remembered tags.

blobs.py   Store: verified writes (temp name, hash, rename), lookups, locks, gc, verify
memo.py    the recompression memo (source layer + edit -> result blob in the store)

May import: the vocabulary modules and fastsync.core.
"""
