"""The attachment flags of `copy` and `sync` (fastsync only; skopeo 1.9.3 has none):
`--attachments` / `--no-attachments` and `--attachment-type TYPE` (repeatable)."""
from __future__ import annotations

from typing import Any, Callable, Optional

import click

from fastsync.errors import UsageError


def attachment_flags(default_on: bool) -> Callable:
    state = "on" if default_on else "off"

    def deco(f: Callable) -> Callable:
        f = click.option("--attachment-type", "attachment_types", multiple=True, metavar="TYPE",
                         help="carry only attachments of this artifact type or kind (signature, attestation, "
                              "sbom, referrer); repeatable")(f)
        return click.option("--attachments/--no-attachments", "attachments", default=None,
                            help="carry cosign signatures, attestations, SBOMs and OCI referrers of each image "
                                 f"(default: {state})")(f)
    return deco


def attachment_options(attachments: Optional[bool], types: tuple[str, ...], default_on: bool) -> Any:
    """CopyOptions.attachments for the flags: None (none carried) or an AttachmentOptions. Asked for
    explicitly, a destination that cannot hold them is an error; on by default, a warning."""
    from fastsync.attachments.model import AttachmentOptions

    if attachments is False:
        if types:
            raise UsageError("--attachment-type needs attachments (drop --no-attachments)")
        return None
    if attachments is None and not default_on and not types:
        return None
    return AttachmentOptions(types=tuple(types), required=attachments is True or (bool(types) and not default_on))
