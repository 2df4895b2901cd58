"""Small option dataclasses passed from the CLI (or a Python caller) into the library."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from fastsync.model import Platform


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    identity_token: str = field(default="", repr=False)

    @classmethod
    def parse(cls, text: str) -> "Credentials":
        """`USER[:PASS]` as skopeo's --creds takes it."""
        user, _, password = text.partition(":")
        return cls(user, password)


@dataclass(frozen=True)
class TransportOptions:
    """Per-side settings (skopeo's --src-*/--dest-* flags)."""

    tls_verify: Optional[bool] = None          # None: verify, and the registry's default
    cert_dir: Optional[str] = None
    creds: Optional[Credentials] = None
    authfile: Optional[str] = None
    no_creds: bool = False
    registry_token: Optional[str] = field(default=None, repr=False)
    daemon_host: Optional[str] = None
    shared_blob_dir: Optional[str] = None       # oci: blobs in DIR/<alg>/<hex> instead of the layout's blobs/
    oci_accept_uncompressed_layers: bool = False   # oci: destination: keep uncompressed layers as they are
    additional_tags: tuple[str, ...] = ()       # docker-archive: destination: more NAME:TAGs for the image


@dataclass(frozen=True)
class CopyOptions:
    """What a copy does beyond moving bytes (skopeo copy's flags)."""

    multi_arch: str = "system"                 # system | all | index-only
    platform: Optional[Platform] = None        # None: the host's
    format: Optional[str] = None               # None | "oci" | "v2s2"
    dest_compress: bool = False                 # compress uncompressed layers (gzip unless a format is set)
    dest_compress_format: Optional[str] = None  # None | "gzip" | "zstd": recompress layers to this
    dest_compress_level: Optional[int] = None
    dest_decompress: bool = False
    preserve_digests: bool = False
    remove_signatures: bool = False
    retry_times: int = 0
    blob_concurrency: int = 6
    trust: Optional[Any] = None                # fastsync.trust.copying.Trust; None: no policy, no signatures
    attachments: Optional[Any] = None          # fastsync.attachments.model.AttachmentOptions; None: none carried


@dataclass(frozen=True)
class NetworkOptions:
    """How requests to registries are retried and timed out (--retry-times, --retry-deadline,
    --connect-timeout, --read-idle-timeout). Blob transfers are retried by CopyOptions.retry_times;
    the CLI sets both from one --retry-times."""

    retry_times: int = 0              # retries of one request after a transient failure
    retry_deadline: float = 600.0     # seconds: no retry starts later than this after the first attempt
    connect_timeout: float = 30.0     # seconds to open a connection (TCP and TLS)
    read_idle_timeout: float = 30.0   # seconds a response may deliver nothing before it is abandoned


@dataclass(frozen=True)
class GlobalOptions:
    """Process-wide settings (skopeo's global flags)."""

    debug: bool = False
    command_timeout: Optional[float] = None
    tmpdir: Optional[str] = None
    insecure_policy: bool = False
    policy_path: Optional[str] = None          # --policy (None: skopeo's default lookup)
    registries_d: Optional[str] = None         # --registries.d (None: the default directory)
    user_agent: str = "fastsync"
    connections_per_host: int = 16
    network: NetworkOptions = NetworkOptions()
