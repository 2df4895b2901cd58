"""One copy job: images from an ImageSource to an ImageDestination, blobs shared across the job.

job.py        Job.copy: manifests and indexes (choose, convert, write last)
transfers.py  SharedTransfers: one transfer per key for every image that needs it
blob.py       the blob pipeline (reuse, cache, stream, recompress) for one blob and destination
describe.py   reading an image for inspect: config, skopeo's summary
formats.py    which manifest type a destination gets
schema1.py    schema 1 -> v2s2 as containers/image converts it (gojson.py: Go's JSON marshalling)

May import: vocabulary, core, registry, store, transports, fastsync.session. Not sync, offline or cli.
"""
