"""`inspect --format TEMPLATE`, as skopeo 1.9.3 evaluates it.

skopeo (cmd/skopeo/inspect.go) runs `{{range . }}` + NormalizeFormat(TEMPLATE) + `{{end}}` (a Go
text/template named "skopeo inspect", builtin functions only) over a one-element []interface{}
holding its inspect.Output struct, or with --config the image's *v1.Image, and writes through a
text/tabwriter it never flushes. So here: the same wrapping and normalisation (`\\t`, `\\n`, a
`table ` prefix, a final newline), the same Go types (field names, digest.Digest and time.Time
with their methods, `can't evaluate field X in type ...`), and the same tabwriter, which drops
whatever follows the last line without a tab. `json` / `{{json .}}` mean the JSON output.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from fastsync.cli.gotemplate import (BOOL, EMPTY_STRUCT, ERROR, INT64, INTERFACE, STRING, GoError, GoType, Method,
                         TemplateError, Value, map_of, parse, ptr_to, slice_of, struct, tabwrite_unflushed, typed)
from fastsync.cli.gotemplate.gotime import TIME

TEMPLATE_NAME = "skopeo inspect"
_JSON = re.compile(r"^\s*(json|\{\{\s*json\s*(\.)?\s*\}\})\s*$")


def is_json(fmt: str) -> bool:
    """containers/common report.IsJSON."""
    return bool(_JSON.match(fmt))


def normalize_format(fmt: str) -> str:
    """containers/common report.NormalizeFormat: `table ` rewrites spaces to tabs; `\\t` and `\\n` escapes."""
    if fmt.startswith("table "):
        pairs = [("table ", ""), ("\\t", "\t"), (" ", "\t"), ("\\n", "\n")]
    else:
        pairs = [("\\t", "\t"), ("\\n", "\n")]
    out, i = [], 0
    while i < len(fmt):
        for old, new in pairs:
            if fmt.startswith(old, i):
                out.append(new)
                i += len(old)
                break
        else:
            out.append(fmt[i])
            i += 1
    text = "".join(out)
    return text if text.endswith("\n") else text + "\n"


def _sep(d: str) -> int:
    i = d.find(":")
    if i < 0:
        raise GoError(f"no ':' separator in digest {d!r}".replace("'", '"'))
    return i


def _validate(d: str) -> Optional[str]:
    i = d.find(":")
    if i <= 0 or i + 1 == len(d):
        raise GoError("invalid checksum digest format")
    algo, enc = d[:i], d[i + 1:]
    sizes = {"sha256": 64, "sha384": 96, "sha512": 128}
    if algo not in sizes:
        raise GoError("unsupported digest algorithm")
    if not re.fullmatch(r"[a-f0-9]*", enc):
        raise GoError("invalid checksum digest format")
    if len(enc) != sizes[algo]:
        raise GoError("invalid checksum digest length")
    return None


ALGORITHM = GoType("string", "digest.Algorithm", methods={"String": Method((), STRING, lambda a: a)})
DIGEST = GoType("string", "digest.Digest", methods={
    "Algorithm": Method((), ALGORITHM, lambda d: d[:_sep(d)]),
    "Encoded": Method((), STRING, lambda d: d[d.find(":") + 1:]),
    "Hex": Method((), STRING, lambda d: d[d.find(":") + 1:]),
    "String": Method((), STRING, lambda d: d),
    "Validate": Method((), ERROR, _validate),
})
STRINGS = slice_of(STRING)
LABELS = map_of(STRING, STRING)

LAYER = struct("types.ImageInspectLayer", [("MIMEType", STRING), ("Digest", DIGEST), ("Size", INT64),
                                           ("Annotations", LABELS)])
OUTPUT = struct("inspect.Output", [
    ("Name", STRING), ("Tag", STRING), ("Digest", DIGEST), ("RepoTags", STRINGS), ("Created", ptr_to(TIME)),
    ("DockerVersion", STRING), ("Labels", LABELS), ("Architecture", STRING), ("Os", STRING), ("Layers", STRINGS),
    ("LayersData", slice_of(LAYER)), ("Env", STRINGS)])

PORTS = map_of(STRING, EMPTY_STRUCT)
IMAGE_CONFIG = struct("v1.ImageConfig", [
    ("User", STRING), ("ExposedPorts", PORTS), ("Env", STRINGS), ("Entrypoint", STRINGS), ("Cmd", STRINGS),
    ("Volumes", PORTS), ("WorkingDir", STRING), ("Labels", LABELS), ("StopSignal", STRING),
    ("ArgsEscaped", BOOL)])     # Debian's skopeo 1.9.3 is built against an image-spec that has ArgsEscaped
ROOTFS = struct("v1.RootFS", [("Type", STRING), ("DiffIDs", slice_of(DIGEST))])
HISTORY = struct("v1.History", [("Created", ptr_to(TIME)), ("CreatedBy", STRING), ("Author", STRING),
                                ("Comment", STRING), ("EmptyLayer", BOOL)])
IMAGE = struct("v1.Image", [
    ("Created", ptr_to(TIME)), ("Author", STRING), ("Architecture", STRING), ("Variant", STRING), ("OS", STRING),
    ("OSVersion", STRING), ("OSFeatures", STRINGS), ("Config", IMAGE_CONFIG), ("RootFS", ROOTFS),
    ("History", slice_of(HISTORY))])


def _config_struct(conf: dict[str, Any]) -> dict[str, Any]:
    """An OCI image config (JSON keys) as v1.Image's Go fields."""
    rt = conf.get("config") or {}
    rootfs = conf.get("rootfs") or {}
    return {
        "Created": conf.get("created"), "Author": conf.get("author"), "Architecture": conf.get("architecture"),
        "Variant": conf.get("variant"), "OS": conf.get("os"), "OSVersion": conf.get("os.version"),
        "OSFeatures": conf.get("os.features"),
        "Config": {name: rt.get(name) for name, _ in IMAGE_CONFIG.fields},
        "RootFS": {"Type": rootfs.get("type"), "DiffIDs": rootfs.get("diff_ids")},
        "History": [{"Created": h.get("created"), "CreatedBy": h.get("created_by"), "Author": h.get("author"),
                     "Comment": h.get("comment"), "EmptyLayer": h.get("empty_layer")}
                    for h in conf.get("history") or []] or None,
    }


def template_data(out: dict[str, Any], config: bool) -> Value:
    """skopeo's `data`: []interface{}{outputData} or []interface{}{*v1.Image}."""
    item = typed(_config_struct(out), ptr_to(IMAGE)) if config else typed(out, OUTPUT)
    return Value(slice_of(INTERFACE), [item])


CONFIG_ERROR_PREFIX = "Error writing OCI-formatted configuration data to standard output: "


def render(fmt: str, out: dict[str, Any], config: bool = False) -> str:
    """What `skopeo inspect [--config] --format FMT` writes to stdout for the inspect dict `out`
    (describe.inspect_output / oci_config_view). A TemplateError's `.partial` is what skopeo had
    written to stdout before the error; with `config` its message starts as skopeo's does."""
    try:
        tmpl = parse(TEMPLATE_NAME, "{{range . }}" + normalize_format(fmt) + "{{end}}")
        text = tmpl.execute(template_data(out, config))
    except TemplateError as exc:
        err = TemplateError((CONFIG_ERROR_PREFIX if config else "") + str(exc))
        err.partial = tabwrite_unflushed(getattr(exc, "partial", ""))  # type: ignore[attr-defined]
        raise err from None
    return tabwrite_unflushed(text)
