"""The distribution protocol: one registry host, spoken over HTTP.

client.py     RegistryClient: ping, manifests, blobs (redirects, Range resume), uploads, mounts, tags
auth.py       WWW-Authenticate challenges, basic and bearer-token auth, token caching
authfile.py   auth.json / docker config: lookup, credential helpers, login/logout edits
tls.py        SSL contexts from --cert-dir, certs.d and --tls-verify
stats.py      per-host traffic figures (requests, bytes, retries, connections, time to first byte) by trace hooks
wire.py       scopes, error bodies, tag lists, Link headers, loggable URLs, connection-failure texts

It knows nothing of transports, sessions, the engine or the CLI: a client is built from an aiohttp
session, a host and TransportOptions. May import: the vocabulary modules only.
"""
