"""One copy job: images from an ImageSource to an ImageDestination, blobs shared across the job.

job.py        Job.copy: manifests and indexes (choose, convert, write last)
transfers.py  SharedTransfers: one transfer per key for every image that needs it
blob.py       the blob pipeline (reuse, cache, stream, recompress) for one blob and destination
describe.py   reading an image for inspect: instance, config, skopeo's summary

May import: vocabulary, core, registry, store, transports, fastsync.session. Not sync, offline or cli.
"""
