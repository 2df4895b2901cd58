"""Sync input files: skopeo's YAML, plain image lists and image-syncer's JSON (see sync.py)."""
from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import replace
from typing import Any, Callable, Optional

from fastsync.errors import FastsyncError, InvalidReference, UsageError
from fastsync.model import Digest
from fastsync.options import Credentials, TransportOptions
from fastsync.reference import DockerReference, parse_docker_reference
from fastsync.session import Session
from fastsync.sync.kinds import SourceImage, SyncInput, docker_image, repository_images


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise FastsyncError(f"reading {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text") from None


def _load_doc(path: str, what: str) -> Any:
    import yaml          # only when a YAML file is read (~10 ms)

    text = _read(path, what)
    try:
        return yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        try:
            return json.loads(text)       # JSON with tabs is not YAML
        except ValueError:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise UsageError(f"Failed to unmarshal {path!r}: invalid YAML{where}") from None


def _repo(registry: str, name: str) -> DockerReference:
    try:
        ref = parse_docker_reference(f"{registry}/{name}")
    except InvalidReference as exc:
        raise UsageError(f"registry {registry!r}, image {name!r}: {exc}") from None
    if ref.tag or ref.digest:
        raise UsageError(f"registry {registry!r}, image {name!r}: input names a reference, not a repository")
    return ref


# ---- skopeo YAML ----------------------------------------------------------------------------------

def _registry_options(cfg: dict, base: TransportOptions, where: str) -> TransportOptions:
    opts = base
    creds = cfg.get("credentials") or {}
    if not isinstance(creds, dict):
        raise UsageError(f"{where}: credentials must be a mapping with username and password")
    if creds.get("username") or creds.get("password"):
        opts = replace(opts, creds=Credentials(str(creds.get("username") or ""), str(creds.get("password") or "")))
    if "tls-verify" in cfg:
        if not isinstance(cfg["tls-verify"], bool):
            raise UsageError(f"{where}: tls-verify must be true or false")
        opts = replace(opts, tls_verify=cfg["tls-verify"])
    if cfg.get("cert-dir"):
        opts = replace(opts, cert_dir=str(cfg["cert-dir"]))
    return opts


def _mapping(cfg: dict, key: str, where: str) -> dict:
    value = cfg.get(key) or {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: {key} must be a mapping of repository names")
    return value


async def yaml_source(session: Session, inp: SyncInput) -> list[SourceImage]:
    doc = _load_doc(inp.source, "sync file")
    if not isinstance(doc, dict):
        raise UsageError(f"Failed to unmarshal {inp.source!r}: expected a mapping of registries")
    jobs: list[Callable[[], Any]] = []
    for registry, cfg in doc.items():
        where = f"{inp.source}: registry {registry}"
        cfg = cfg or {}
        if not isinstance(cfg, dict):
            raise UsageError(f"{where}: expected a mapping")
        opts = _registry_options(cfg, inp.src_opts, where)
        atts = _attachments(cfg, where)
        for name, refs in _mapping(cfg, "images", where).items():
            repo = _repo(str(registry), str(name))
            if refs is None or refs == []:
                jobs.append(_tags_job(session, repo, opts, None, inp, atts))
                continue
            if not isinstance(refs, list):
                raise UsageError(f"{where}: images.{name} must be a list of tags or digests")
            jobs.append(_fixed_job([_tag_or_digest(repo, str(r), where) for r in refs], opts, atts))
        for name, pattern in _mapping(cfg, "images-by-tag-regex", where).items():
            try:
                rx = re.compile(str(pattern))
            except re.error as exc:
                raise UsageError(f"{where}: images-by-tag-regex.{name}: {exc}") from None
            jobs.append(_tags_job(session, _repo(str(registry), str(name)), opts, lambda t, rx=rx: bool(rx.search(t)),
                                  inp, atts))
        for name, constraint in _mapping(cfg, "images-by-semver", where).items():
            check = semver_constraint(str(constraint))
            jobs.append(_tags_job(session, _repo(str(registry), str(name)), opts, check, inp, atts))
    groups = await asyncio.gather(*(j() for j in jobs))
    return [img for g in groups for img in g]


def _tag_or_digest(repo: DockerReference, ref: str, where: str) -> DockerReference:
    try:
        if re.match(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$", ref):
            return parse_docker_reference(f"{repo.name}@{Digest.parse(ref)}")
        return parse_docker_reference(f"{repo.name}:{ref}")
    except (InvalidReference, FastsyncError) as exc:
        raise UsageError(f"{where}: {repo.name}: bad tag or digest {ref!r}: {exc}") from None


def _attachments(cfg: dict, where: str) -> Any:
    """A registry's `attachments:` (fastsync only): true, false, or a list of artifact types/kinds."""
    if "attachments" not in cfg:
        return None
    from fastsync.attachments.model import AttachmentOptions

    value = cfg["attachments"]
    if isinstance(value, bool):
        return AttachmentOptions(enabled=value)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return AttachmentOptions(types=tuple(value))
    raise UsageError(f"{where}: attachments must be true, false or a list of artifact types")


def _fixed_job(refs: list[DockerReference], opts: TransportOptions, atts: Any = None) -> Callable[[], Any]:
    async def run() -> list[SourceImage]:
        return [SourceImage(docker_image(r), opts, str(r), attachments=atts) for r in refs]
    return run


def _tags_job(session: Session, repo: DockerReference, opts: TransportOptions,
              keep: Optional[Callable[[str], bool]], inp: SyncInput, atts: Any = None) -> Callable[[], Any]:
    async def run() -> list[SourceImage]:
        try:
            refs = await repository_images(session, repo, opts)
        except FastsyncError as exc:
            if not inp.keep_going:
                raise FastsyncError(f"Error determining repository tags for repo {repo.name}: {exc}") from None
            inp.warnings.append(f"skipping {repo.name}: {exc}")
            return []
        return [SourceImage(docker_image(r), opts, str(r), attachments=atts) for r in refs
                if keep is None or keep(r.tag or "")]
    return run


# ---- semver constraints (Masterminds/semver, as images-by-semver uses) ------------------------------

_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
Version = tuple[int, int, int, tuple]


def parse_version(text: str) -> Optional[Version]:
    """A tag as a semantic version (v prefix and missing minor/patch allowed), or None."""
    m = _VERSION.match(text.strip())
    if not m:
        return None
    pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split(".")) if m.group(4) else ()
    return int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), pre


def _cmp(a: Version, b: Version) -> int:
    if a[:3] != b[:3]:
        return -1 if a[:3] < b[:3] else 1
    pa, pb = a[3], b[3]
    if pa == pb:
        return 0
    if not pa or not pb:
        return 1 if not pa else -1          # a release sorts after its pre-releases
    for x, y in zip(pa, pb):
        if x != y:
            if isinstance(x, int) != isinstance(y, int):
                return -1 if isinstance(x, int) else 1
            return -1 if x < y else 1   # type: ignore[operator]
    return -1 if len(pa) < len(pb) else 1


_TERM = re.compile(r"^\s*(=|!=|>=|=>|<=|=<|>|<|~>|~|\^)?\s*v?([0-9xX*]+(?:\.[0-9xX*]+)?(?:\.[0-9xX*]+)?"
                   r"(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)\s*$")


def _term(text: str) -> Callable[[Version], bool]:
    """One comparison (`>=1.2`, `~1.2.3`, `^2`, `1.x`) as a predicate; missing parts are wildcards."""
    m = _TERM.match(text)
    if not m:
        raise UsageError(f"improper constraint: {text.strip()}")
    op = {"=>": ">=", "=<": "<=", "~>": "~"}.get(m.group(1) or "=", m.group(1) or "=")
    core, _, pre = m.group(2).split("+", 1)[0].partition("-")
    parts = core.split(".")
    fixed = next((i for i, p in enumerate(parts) if p in ("x", "X", "*")), len(parts))
    n = [int(p) for p in parts[:fixed]] + [0] * (3 - fixed)
    base: Version = (n[0], n[1], n[2], tuple(int(p) if p.isdigit() else p for p in pre.split(".")) if pre else ())
    up: Optional[Version] = (None if fixed == 0 else (n[0] + 1, 0, 0, ()) if fixed == 1
                             else (n[0], n[1] + 1, 0, ()) if fixed == 2 else (n[0], n[1], n[2] + 1, ()))
    wild = fixed < 3

    def below(v: Version, limit: Optional[Version]) -> bool:
        return limit is None or _cmp(v, limit) < 0

    def pred(v: Version) -> bool:
        if v[3] and not (base[3] and v[:3] == base[:3]):
            return False                   # pre-releases match only a constraint naming that version's
        c = _cmp(v, base)
        if op in ("=", "!="):
            hit = (c >= 0 and below(v, up)) if wild else c == 0
            return hit if op == "=" else not hit
        if op == ">":
            return (up is not None and _cmp(v, up) >= 0) if wild else c > 0
        if op == ">=":
            return c >= 0
        if op == "<":
            return c < 0
        if op == "<=":
            return below(v, up) if wild else c <= 0
        if op == "~":
            return c >= 0 and below(v, (n[0] + 1, 0, 0, ()) if fixed <= 1 else (n[0], n[1] + 1, 0, ()))
        if n[0] > 0 or fixed == 1:         # ^: the left-most non-zero part stays
            return c >= 0 and below(v, (n[0] + 1, 0, 0, ()))
        if n[1] > 0 or fixed == 2:
            return c >= 0 and below(v, (0, n[1] + 1, 0, ()))
        return c >= 0 and below(v, (0, 0, n[2] + 1, ()))
    return pred


def semver_constraint(text: str) -> Callable[[str], bool]:
    """A tag filter for a Masterminds/semver constraint: `||` alternatives of `,`/space-joined terms;
    `1.2 - 1.4` ranges. Tags that are not versions never match."""
    alternatives = []
    for alt in text.split("||"):
        alt = re.sub(r"\s+-\s+", " - ", alt.strip())
        alt = re.sub(r"([=<>~^])\s+", r"\1", alt)          # ">= 1.2" -> ">=1.2"
        terms: list[Callable[[Version], bool]] = []
        hyphen = re.fullmatch(r"(\S+) - (\S+)", alt)
        if hyphen:
            terms = [_term(">=" + hyphen.group(1)), _term("<=" + hyphen.group(2))]
        else:
            for t in re.split(r"\s*,\s*|\s+(?=[=!<>~^v\d])", alt):
                if t.strip():
                    terms.append(_term(t))
        if not terms:
            raise UsageError(f"improper constraint: {text}")
        alternatives.append(terms)

    def match(tag: str) -> bool:
        v = parse_version(tag)
        return v is not None and any(all(t(v) for t in terms) for terms in alternatives)
    return match


# ---- plain image lists ----------------------------------------------------------------------------

def _has_registry(name: str) -> bool:
    first, sep, _ = name.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


async def list_source(session: Session, inp: SyncInput) -> list[SourceImage]:
    """One image per line (`repo:tag`, `repo@digest`, or a repo for all its tags); `#` comments and
    `##section` headers are skipped. Lines without a registry get --src-registry (default docker.io).
    Unscoped, the destination keeps the line's path: DEST/ns/app:1."""
    jobs = []
    for n, line in enumerate(_read(inp.source, "image list").splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        host = "" if _has_registry(line) or not inp.src_registry else inp.src_registry.rstrip("/") + "/"
        try:
            ref = parse_docker_reference(host + line)
        except InvalidReference as exc:
            raise UsageError(f"{inp.source}:{n}: {exc}") from None
        written = line.split("/", 1)[1] if _has_registry(line) else line
        jobs.append((ref, written))
    groups = await asyncio.gather(*(_list_job(session, ref, written, inp) for ref, written in jobs))
    return [img for g in groups for img in g]


async def _list_job(session: Session, ref: DockerReference, written: str, inp: SyncInput) -> list[SourceImage]:
    if ref.tag or ref.digest:
        return [SourceImage(docker_image(ref), inp.src_opts, str(ref), plain=written)]
    out = []
    for r in await repository_images(session, ref, inp.src_opts):
        out.append(SourceImage(docker_image(r), inp.src_opts, str(r), plain=f"{written}:{r.tag}"))
    return out


# ---- image-syncer ---------------------------------------------------------------------------------

def _expand_env(value: Any) -> str:
    text = str(value or "")
    m = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", text)
    return os.environ.get(m.group(1) or m.group(2), "") if m else text


def _syncer_auth(path: str) -> dict[str, dict]:
    doc = _load_doc(path, "auth file")
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise UsageError(f"auth file {path}: expected a mapping of registry (or registry/namespace) to "
                         "username/password/insecure")
    return doc


def syncer_options(auth_file: str, ref: DockerReference, base: TransportOptions) -> TransportOptions:
    """Options for `ref` from an image-syncer auth file: `registry/namespace` beats `registry`."""
    auth = _syncer_auth(auth_file)
    ns = ref.path.split("/", 1)[0]
    entry = auth.get(f"{ref.domain}/{ns}") or auth.get(ref.domain)
    if entry is None and ref.domain == "docker.io":
        entry = auth.get("registry.hub.docker.com") or auth.get("index.docker.io")
    if entry is None:
        return base
    opts = base
    user, password = _expand_env(entry.get("username")), _expand_env(entry.get("password"))
    if user or password:
        opts = replace(opts, creds=Credentials(user, password))
    if entry.get("insecure"):
        opts = replace(opts, tls_verify=False)
    return opts


def _split_tags(key: str) -> tuple[str, list[str]]:
    """`reg/ns/repo:t1,t2` -> (`reg/ns/repo`, [t1, t2]); digests stay in the name."""
    if "@" in key:
        return key, []
    slash = key.rfind("/")
    colon = key.rfind(":")
    if colon > slash:
        return key[:colon], [t.strip() for t in key[colon + 1:].split(",") if t.strip()]
    return key, []


async def image_syncer_source(session: Session, inp: SyncInput) -> list[SourceImage]:
    """image-syncer's images file: {"src[:t1,t2]": "dst" | ["dst", ...] | ""}; an empty destination
    means DESTINATION (default registry/namespace) + the repository's last name."""
    doc = _load_doc(inp.source, "images file")
    if isinstance(doc, dict) and "images" in doc and ("auth" in doc or not isinstance(doc["images"], str)):
        doc = doc["images"]              # the older single config file: {"auth": ..., "images": ...}
    if not isinstance(doc, dict):
        raise UsageError(f"images file {inp.source}: expected a mapping of source to destination")
    jobs = []
    for key, value in doc.items():
        if not (value is None or isinstance(value, str) or
                (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise UsageError(f"images file {inp.source}: source {key!r}: the destination must be a name, "
                             f"a list of names or empty, not {type(value).__name__}")
        name, tags = _split_tags(str(key))
        try:
            src = parse_docker_reference(name)
        except InvalidReference as exc:
            raise UsageError(f"images file {inp.source}: source {key!r}: {exc}") from None
        dests = value if isinstance(value, list) else [value]
        for dst in dests:
            jobs.append((src, tags, str(dst or "")))
    groups = await asyncio.gather(*(_syncer_job(session, src, tags, dst, inp) for src, tags, dst in jobs))
    return [img for g in groups for img in g]


async def _syncer_job(session: Session, src: DockerReference, tags: list[str], dst: str,
                      inp: SyncInput) -> list[SourceImage]:
    opts = syncer_options(inp.auth_file, src, inp.src_opts) if inp.auth_file else inp.src_opts
    if not dst:
        if not inp.destination:
            raise UsageError(f"{src.name}: empty destination and no default registry/namespace (DESTINATION)")
        dst = f"{inp.destination.rstrip('/')}/{src.path.rsplit('/', 1)[-1]}"
    dname, dtags = _split_tags(dst)
    if dtags and len(tags) > 1:
        raise UsageError(f"{src.name}: a destination tag needs exactly one source tag ({dst})")
    if src.digest:
        refs = [src]
    elif tags:
        refs = [parse_docker_reference(f"{src.name}:{t}") for t in tags]
    else:
        if dtags:
            raise UsageError(f"{src.name}: a destination tag needs a source tag ({dst})")
        refs = await repository_images(session, src, opts)
    out = []
    for r in refs:
        target = f"{dname}:{dtags[0]}" if dtags else (f"{dname}@{r.digest}" if r.digest else f"{dname}:{r.tag}")
        out.append(SourceImage(docker_image(r), opts, str(r), dest=target))
    return out
