"""Credential stores as containers/image reads them: auth.json, docker config.json, credential helpers.

Lookup (`lookup_credentials`) walks the files in skopeo's order and, in each file, tries the
credential helper configured for the registry (`credHelpers`), then the `auths` keys most specific
first (`host/ns/repo`, `host/ns`, `host`), then keys written as URLs (`https://host/v1/`,
`https://index.docker.io/v1/` for docker.io), then -- an extension over skopeo 1.9, which ignores it --
the file's `credsStore`. The first file that yields credentials wins.

Writes (`set_credentials`, `remove_credentials`, `remove_all_credentials`) go to one file, the
primary auth file, atomically (temp file + fsync + rename) with mode 0600; other entries and unknown
keys are preserved. Nothing here prints; failures raise `FastsyncError` subclasses.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Optional

from fastsync.errors import FastsyncError, InvalidReference, UsageError
from fastsync.options import Credentials

log = logging.getLogger("fastsync")

DOCKER_HUB = "docker.io"
DOCKER_HUB_KEYS = ("registry-1.docker.io", "docker.io", "index.docker.io")
DOCKER_HUB_URL = "https://index.docker.io/v1/"
NOT_FOUND = "credentials not found in native keychain"


class AuthFileError(FastsyncError):
    """An auth file cannot be read, parsed or written, or a credential helper failed."""


class NotLoggedIn(FastsyncError):
    """logout found no credentials for the key."""


@dataclass(frozen=True)
class AuthPath:
    path: str
    legacy: bool = False      # ~/.dockercfg: a bare {registry: {auth}} map


# ---- keys ------------------------------------------------------------------------------------------

def registry_of(key: str) -> str:
    return key.split("/", 1)[0]


def normalize_registry(registry: str) -> str:
    return "index.docker.io" if registry in ("registry-1.docker.io", "docker.io") else registry


def normalize_file_key(key: str, legacy: bool = False) -> str:
    """containers/image's normalizeAuthFileKey: URL keys lose scheme and path; docker.io aliases unify."""
    stripped = key
    for prefix in ("http://", "https://"):
        if stripped.startswith(prefix):
            stripped = stripped[len(prefix):]
            break
    if legacy or stripped != key:
        stripped = stripped.split("/", 1)[0]
    return normalize_registry(stripped)


def keys_for(key: str) -> list[str]:
    """`quay.io/org/repo` -> [`quay.io/org/repo`, `quay.io/org`, `quay.io`] (most specific first)."""
    parts = key.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def credentials_key(host: str, repo: Optional[str] = None) -> str:
    """The auth-file key of a repository on `host` (registry-1.docker.io is docker.io)."""
    domain = DOCKER_HUB if host in DOCKER_HUB_KEYS else host
    return f"{domain}/{repo}" if repo else domain


def parse_login_key(arg: str, accept_repositories: bool = True) -> tuple[str, str]:
    """(key, registry) for `login`/`logout`'s argument, as skopeo reads it.

    `https://host:port/anything` -> host:port; `host/ns/repo` stays namespaced (no tag or digest).
    """
    key = arg.strip()
    for prefix in ("http://", "https://"):
        if key.startswith(prefix):
            key = key[len(prefix):].split("/", 1)[0]
            break
    if not key:
        raise UsageError("a registry name is required")
    registry = registry_of(key)
    if not accept_repositories or key == registry:
        return registry, registry
    from fastsync.reference import parse_docker_reference

    try:
        ref = parse_docker_reference(key)
    except InvalidReference as exc:
        raise UsageError(f"parse reference from {key!r}: {exc}") from None
    if ref.tag or ref.digest:
        raise UsageError(f"reference {key!r} contains tag or digest")
    return key, registry


# ---- paths -----------------------------------------------------------------------------------------

def primary_auth_file(authfile: Optional[str] = None) -> str:
    """Where login writes and lookups start: --authfile, $REGISTRY_AUTH_FILE,
    ${XDG_RUNTIME_DIR}/containers/auth.json, else /run/containers/UID/auth.json (skopeo 1.9.3)."""
    if authfile:
        return authfile
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return env
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        if not os.path.exists(runtime):
            raise AuthFileError(f"{runtime!r} directory set by $XDG_RUNTIME_DIR does not exist. Either create "
                                f"the directory or unset $XDG_RUNTIME_DIR.")
        return os.path.join(runtime, "containers", "auth.json")
    return f"/run/containers/{os.getuid()}/auth.json"


def auth_file_paths(authfile: Optional[str] = None) -> list[AuthPath]:
    """Every file a lookup reads, in order."""
    paths: list[AuthPath] = []
    try:
        paths.append(AuthPath(primary_auth_file(authfile)))
    except AuthFileError as exc:
        log.warning("%s: trying the other auth files", exc)
    home = os.path.expanduser("~")
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    paths.append(AuthPath(os.path.join(config_home, "containers", "auth.json")))
    docker_config = os.environ.get("DOCKER_CONFIG")
    paths.append(AuthPath(os.path.join(docker_config, "config.json") if docker_config
                          else os.path.join(home, ".docker", "config.json")))
    paths.append(AuthPath(os.path.join(home, ".dockercfg"), legacy=True))
    return paths


# ---- reading ---------------------------------------------------------------------------------------

def read_auth_file(path: str, legacy: bool = False) -> dict[str, Any]:
    """The file's JSON object ({} when it does not exist); legacy files are wrapped as {"auths": ...}."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise AuthFileError(f"reading auth file {path}: {exc.strerror or exc}") from None
    if not data.strip():
        return {}
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise AuthFileError(f"reading auth file {path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise AuthFileError(f"reading auth file {path}: expected a JSON object")
    if legacy:
        doc = {"auths": doc}
    for name in ("auths", "credHelpers"):
        if name in doc and not isinstance(doc[name], dict):
            raise AuthFileError(f"reading auth file {path}: {name!r} must be an object")
    for k, v in (doc.get("auths") or {}).items():
        if not isinstance(v, dict):
            raise AuthFileError(f"reading auth file {path}: entry {k!r} must be an object")
    return doc


def decode_entry(entry: dict[str, Any]) -> Optional[Credentials]:
    """An `auths` entry -> Credentials; None for empty/marker entries (docker writes {} with credsStore)."""
    raw = entry.get("auth") or ""
    try:
        decoded = base64.b64decode(raw, validate=False).decode("utf-8")
    except (binascii.Error, ValueError):
        decoded = ""
    user, sep, password = decoded.partition(":")
    token = entry.get("identitytoken") or ""
    if not sep:
        if decoded:
            log.warning("an 'auth' field of an auth file entry is not USER:PASSWORD; ignoring it")
        return Credentials("", "", token) if token else None
    return Credentials(user, password.strip("\x00"), token)


def find_in_file(key: str, path: str, legacy: bool = False) -> Optional[Credentials]:
    """Credentials for `key` (host or host/namespace/repo) in one file, or None."""
    doc = read_auth_file(path, legacy)
    if not doc:
        return None
    registry = registry_of(key)
    helper = _helper_for(doc, registry)
    if helper:
        return helper_get(helper, registry)
    auths: dict[str, Any] = doc.get("auths") or {}
    wanted = normalize_registry(registry)
    found = next((auths[k] for k in ([registry] if legacy else keys_for(key)) if k in auths), None)
    if found is None:
        found = next((e for k, e in auths.items() if normalize_file_key(k, legacy) == wanted), None)
    creds = decode_entry(found) if found is not None else None
    if creds:
        return creds
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        for server in ([DOCKER_HUB_URL, DOCKER_HUB] if wanted == "index.docker.io" else [registry]):
            creds = helper_get(store, server)
            if creds:
                return creds
    log.debug("no credentials for %s in %s", key, path)
    return None


def lookup_credentials(key: str, authfile: Optional[str] = None) -> Optional[Credentials]:
    """Credentials for `key` from the auth files and helpers, in skopeo's order; None when none."""
    for ap in auth_file_paths(authfile):
        creds = find_in_file(key, ap.path, ap.legacy)
        if creds:
            log.debug("using credentials for %s from %s", key, ap.path)
            return creds
    return None


def has_namespaced_keys(key: str, authfile: Optional[str] = None) -> bool:
    """Whether an auth file has an `auths` key for a namespace of registry `key` (``key/...``),
    i.e. whether lookups for that registry's repositories can differ from the registry's own."""
    prefix = key + "/"
    for ap in auth_file_paths(authfile):
        if not ap.legacy and any(k.startswith(prefix) for k in (read_auth_file(ap.path).get("auths") or {})):
            return True
    return False


def _helper_for(doc: dict[str, Any], registry: str) -> Optional[str]:
    helpers = doc.get("credHelpers") or {}
    if registry in helpers:
        return str(helpers[registry])
    wanted = normalize_registry(registry)
    for k, name in helpers.items():
        if normalize_file_key(k, True) == wanted:
            return str(name)
    return None


# ---- credential helpers ----------------------------------------------------------------------------

def _run_helper(name: str, action: str, stdin: str) -> tuple[int, str]:
    exe = shutil.which(f"docker-credential-{name}")
    if exe is None:
        raise AuthFileError(f"credential helper docker-credential-{name} not found in $PATH")
    try:
        proc = subprocess.run([exe, action], input=stdin.encode(), capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AuthFileError(f"running credential helper docker-credential-{name} {action}: "
                            f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    out = (proc.stdout or proc.stderr).decode("utf-8", "replace").strip()
    return proc.returncode, out


def _helper_failed(name: str, action: str, out: str) -> AuthFileError:
    # A helper's output on failure is a message, never the secret; keep only its first line, shortened.
    first = out.splitlines()[0][:200] if out else "no output"
    return AuthFileError(f"credential helper docker-credential-{name} {action} failed: {first}")


def helper_get(name: str, server: str) -> Optional[Credentials]:
    """`docker-credential-NAME get` for `server`; None when the helper has no credentials for it."""
    code, out = _run_helper(name, "get", server)
    if code != 0:
        if NOT_FOUND in out:
            return None
        raise _helper_failed(name, "get", out)
    try:
        doc = json.loads(out)
        user, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
    except (ValueError, AttributeError):
        raise AuthFileError(f"credential helper docker-credential-{name} get: output is not JSON") from None
    if not user and not secret:
        return None
    if user == "<token>":
        return Credentials("", "", secret)
    return Credentials(user, secret)


def helper_store(name: str, server: str, username: str, secret: str) -> None:
    body = json.dumps({"ServerURL": server, "Username": username, "Secret": secret})
    code, out = _run_helper(name, "store", body)
    if code != 0:
        raise _helper_failed(name, "store", out)


def helper_erase(name: str, server: str) -> bool:
    """True when the helper erased something, False when it had nothing for `server`."""
    code, out = _run_helper(name, "erase", server)
    if code != 0:
        if NOT_FOUND in out:
            return False
        raise _helper_failed(name, "erase", out)
    return True


# ---- writing ---------------------------------------------------------------------------------------

def write_auth_file(path: str, doc: dict[str, Any]) -> None:
    """Write `doc` to `path` atomically with mode 0600 (directories created 0700)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".auth-", suffix=".json.tmp", dir=directory)
    except OSError as exc:
        raise AuthFileError(f"writing auth file {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(json.dumps(doc, indent="\t").encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.realpath(path))
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise AuthFileError(f"writing auth file {path}: {exc.strerror or exc}") from None


def _modify(path: str, change: Callable[[dict[str, Any]], bool]) -> None:
    doc = read_auth_file(path)
    doc.setdefault("auths", {})
    if change(doc):
        write_auth_file(path, doc)


def set_credentials(key: str, username: str, password: str, authfile: Optional[str] = None) -> str:
    """Save credentials for `key` (login); returns where they went (the file, or the helper's name)."""
    path = primary_auth_file(authfile)
    registry = registry_of(key)
    where = [path]

    def change(doc: dict[str, Any]) -> bool:
        helper = _helper_for(doc, registry)
        if helper:
            if key != registry:
                raise AuthFileError(f"namespaced key {key!r} is not supported for credential helper {helper}")
            helper_store(helper, registry, username, password)
            where[0] = f"credential helper: {helper}"
            return False
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        doc["auths"][key] = {"auth": token}
        return True

    _modify(path, change)
    return where[0]


def remove_credentials(key: str, authfile: Optional[str] = None) -> None:
    """Remove the entry for exactly `key` (logout); raises NotLoggedIn when there is none."""
    path = primary_auth_file(authfile)
    registry = registry_of(key)
    removed = [False]

    def change(doc: dict[str, Any]) -> bool:
        helper = _helper_for(doc, registry)
        if helper and key == registry:
            removed[0] = helper_erase(helper, registry)
        if key in doc["auths"]:
            del doc["auths"][key]
            removed[0] = True
            return True
        return False

    _modify(path, change)
    if not removed[0]:
        raise NotLoggedIn(f"not logged into {key}")


def remove_all_credentials(authfile: Optional[str] = None) -> None:
    """Forget every login in the primary auth file (entries kept in its credential helpers too)."""
    path = primary_auth_file(authfile)

    def change(doc: dict[str, Any]) -> bool:
        for registry, helper in (doc.get("credHelpers") or {}).items():
            helper_erase(str(helper), registry)
        doc["auths"] = {}
        return True

    _modify(path, change)
