"""Trust: container signatures, the signature policy and where signatures live.

- `payload`      the signed JSON payloads (simple signing and sigstore): build, and parse strictly
- `gpg`          simple signing through the `gpg` binary (sign, verify, ephemeral keyrings)
- `sigstore`     cosign-format keys (the encrypted private key file) and ECDSA/RSA/Ed25519 sign/verify
- `formats`      a signature as stored: the binary OpenPGP message, or a tagged sigstore JSON blob
- `policy`       policy.json: parse (as strictly as containers/image) and pick the scope for an image
- `evaluate`     the requirements (insecureAcceptAnything, reject, signedBy, sigstoreSigned) and
                 signedIdentity matching, with containers/image's rejection wording
- `registries_d` registries.d: the lookaside (signature storage) configuration for registries
- `lookaside`    reading and writing signatures per transport (dir: files, registry lookaside)
- `attachments`  sigstore signatures as registry attachments (the `sha256-HEX.sig` OCI manifest)
- `copying`      the narrow hooks the copy engine calls: check the policy, carry and add signatures
- `encryption`   ocicrypt's jwe protocol: layer cipher (AES-256-CTR + HMAC), JWE key wrapping, key files
- `layers`       source wrappers: encrypt or decrypt layers on the way; serve manifests read already

Nothing here imports the engine, the sync planner or click; errors are FastsyncError subclasses.

May import: vocabulary, core, registry, store, session, transports. Not engine, sync or cli: the
engine calls it through CopyOptions.trust (check, layers, put_signatures).
"""
