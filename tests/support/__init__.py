"""Real-parts test infrastructure: deterministic sample images, real registry processes,
a token server, network proxies and certificates. Nothing here is a mock.

Public modules (import them directly; this package imports nothing, so
``import support.images`` stays cheap):
  images       sample images, dir:/oci: writers, skopeo seeding (facade over imagemodel,
               schema1 and layouts)
  registry     ``Registry``: docker-registry processes (plain, htpasswd, TLS, client cert, token)
  tokenserver  ``TokenServer``: Docker token auth (RS256 JWTs) recording every request
  proxy        ``DelayProxy`` (WAN delay/bandwidth), ``TamperProxy``, ``RedirectCapture``
               (the HTTP ones live in httpproxy)
  certs        test CA, server/client certificates, skopeo --cert-dir layout
"""
