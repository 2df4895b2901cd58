"""Real-parts test infrastructure: deterministic sample images, real registry processes,
a token server, network proxies and certificates. Nothing here is a mock.

Modules: images (sample images, dir:/oci: writers, skopeo seeding), registry (docker-registry
processes), tokenserver (Docker token auth), proxy (DelayProxy, TamperProxy, RedirectCapture),
certs (CA, server and client certificates). Import the submodules directly; this package
imports nothing so that ``import fastsync.testing.images`` stays cheap.
"""
