"""registries.d (containers-registries.d(5)): per registry namespace, where signatures of images in
a registry live: `lookaside` (read, and write unless `lookaside-staging`), `lookaside-staging`
(write), the deprecated `sigstore`/`sigstore-staging` spellings, and `use-sigstore-attachments`.
The most specific namespace of an image wins, then `default-docker`, then the built-in directory."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

from fastsync.errors import FastsyncError
from fastsync.model import Digest
from fastsync.reference import DockerReference

SYSTEM_DIR = "/etc/containers/registries.d"
USER_DIR = ".config/containers/registries.d"


class RegistriesDError(FastsyncError):
    """A registries.d file is unreadable or malformed."""


@dataclass(frozen=True)
class Namespace:
    lookaside: str = ""
    lookaside_staging: str = ""
    use_sigstore_attachments: Optional[bool] = None

    def top_level(self, write: bool) -> str:
        return (self.lookaside_staging if write else "") or self.lookaside


@dataclass(frozen=True)
class RegistriesD:
    default: Optional[Namespace] = None
    namespaces: dict[str, Namespace] = field(default_factory=dict, hash=False)

    def _chain(self, identity: str, namespaces: tuple[str, ...]) -> list[Namespace]:
        out = [self.namespaces[n] for n in (identity, *namespaces) if n in self.namespaces]
        return out + ([self.default] if self.default is not None else [])

    def base_url(self, ref: DockerReference, identity: str, namespaces: tuple[str, ...], write: bool) -> str:
        """The signature storage URL of `ref`'s repository (without the per-manifest suffix)."""
        top = next((u for u in (ns.top_level(write) for ns in self._chain(identity, namespaces)) if u), "")
        if not top:
            top = "file://" + builtin_lookaside()
        parts = urlsplit(top)
        if not parts.scheme:
            raise RegistriesDError(f"Invalid signature storage URL {top}: missing scheme")
        return top + "/" + ref.path        # as containers/image joins them

    def use_sigstore_attachments(self, identity: str, namespaces: tuple[str, ...]) -> bool:
        for ns in self._chain(identity, namespaces):
            if ns.use_sigstore_attachments is not None:
                return ns.use_sigstore_attachments
        return False


def builtin_lookaside() -> str:
    if os.geteuid() != 0:
        return os.path.join(os.path.expanduser("~"), ".local/share/containers/sigstore")
    return "/var/lib/containers/sigstore"


def signature_url(base: str, digest: Digest, index: int) -> str:
    """`base/repo@sha256=HEX/signature-N` (N from 1)."""
    return f"{base}@{digest.algorithm}={digest.hex}/signature-{index + 1}"


def default_dir(home: Optional[str] = None) -> str:
    user = os.path.join(home if home is not None else os.path.expanduser("~"), USER_DIR)
    return user if os.path.exists(user) else SYSTEM_DIR


def _namespace(doc: Any, where: str) -> Namespace:
    if doc is None:
        return Namespace()
    if not isinstance(doc, dict):
        raise RegistriesDError(f"parsing {where}: a namespace must be a mapping")
    use = doc.get("use-sigstore-attachments")
    if use is not None and not isinstance(use, bool):
        raise RegistriesDError(f"parsing {where}: use-sigstore-attachments must be true or false")
    strings = {}
    for key in ("lookaside", "lookaside-staging", "sigstore", "sigstore-staging"):
        v = doc.get(key)
        if v is not None and not isinstance(v, str):
            raise RegistriesDError(f"parsing {where}: {key} must be a string")
        strings[key] = v or ""
    return Namespace(strings["lookaside"] or strings["sigstore"],
                     strings["lookaside-staging"] or strings["sigstore-staging"], use)


def load(path: Optional[str] = None) -> RegistriesD:
    """Merge every *.yaml of the directory (a namespace defined twice is an error, as in containers/image)."""
    import yaml

    d = path or default_dir()
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return RegistriesD()
    except OSError as exc:
        raise RegistriesDError(f"open {d}: {(exc.strerror or str(exc)).lower()}") from None
    default: Optional[Namespace] = None
    default_from = ""
    spaces: dict[str, Namespace] = {}
    spaces_from: dict[str, str] = {}
    for name in names:
        if not name.endswith(".yaml"):
            continue
        file = os.path.join(d, name)
        try:
            with open(file, "rb") as f:
                doc = yaml.safe_load(f)
        except OSError as exc:
            raise RegistriesDError(f"open {file}: {(exc.strerror or str(exc)).lower()}") from None
        except yaml.YAMLError as exc:
            raise RegistriesDError(f"parsing {file}: {' '.join(str(exc).split())}") from None
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise RegistriesDError(f"parsing {file}: expected a mapping")
        if doc.get("default-docker") is not None:
            if default is not None:
                raise RegistriesDError('Error parsing signature storage configuration: "default-docker" defined '
                                       f'both in "{default_from}" and "{file}"')
            default, default_from = _namespace(doc["default-docker"], file), file
        docker = doc.get("docker") or {}
        if not isinstance(docker, dict):
            raise RegistriesDError(f"parsing {file}: docker must be a mapping of namespaces")
        for ns, conf in docker.items():
            if ns in spaces:
                raise RegistriesDError(f'Error parsing signature storage configuration: "docker" namespace "{ns}" '
                                       f'defined both in "{spaces_from[ns]}" and "{file}"')
            spaces[str(ns)], spaces_from[str(ns)] = _namespace(conf, file), file
    return RegistriesD(default, spaces)


__all__ = ["RegistriesD", "Namespace", "load", "signature_url", "default_dir"]
