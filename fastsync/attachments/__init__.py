"""What travels with an image besides its signatures' lookaside: cosign's tag scheme
(`sha256-HEX.sig`, `.att`, `.sbom` in the image's repository) and OCI 1.1 referrers (manifests whose
`subject` is the image), found and written through the transports' generic interfaces.

    found = await discover(Reader(session, src_ref, src, src_opts), digest, options, warn)
    carried = await Carrier(session, options, warn, move_blob).carry(src side, dst side, written)

`model` holds the values, `discover` reads them (the referrers API where a registry has it, else the
referrers tag schema `sha256-HEX`), `write` pushes them (detecting `OCI-Subject`, else merging the
fallback index without losing another writer's entries), `carry` is the hook the engine calls and
`probe` the sync planner's one-round check that a destination has them all.

Imports: vocabulary, registry, transports and session; the engine passes its blob mover in, so
nothing here imports engine, sync or cli."""
