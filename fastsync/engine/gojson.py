"""Go's encoding/json (1.19), as far as the schema 1 conversion needs it: strings and times as Go
marshals them, objects read as Go reads them into structs, and containers/image's Go structures for a
schema 1 image's top v1Compatibility (Schema2V1Image, Schema2Config, Schema2HealthConfig).

ToSchema2Config decodes every config into these structures (a field of the wrong type fails the
conversion), and for images made by Docker before 1.8.3 uses their re-encoding instead of the raw
text: then unknown fields are lost and every known one is written in struct order (omitempty
honoured, nil slices and maps as null). `decode` gives the fields as Python values, `encode_fields`
the top-level fields as Go's raw JSON text.
"""
from __future__ import annotations

import json
import re
from typing import Any, Union

from fastsync.errors import ManifestError

_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})\Z")
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
ZERO_TIME = "0001-01-01T00:00:00Z"
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "<": "\\u003c",
            ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class Obj(list):
    """A JSON object as its (key, value) pairs, in document order (Go reads keys in order, so a later
    duplicate wins, and matches struct fields case-insensitively)."""


def load_object(text: str, what: str) -> Obj:
    try:
        pairs = json.loads(text, object_pairs_hook=Obj)
    except ValueError as exc:
        raise ManifestError(f"{what}: {exc}") from None
    if not isinstance(pairs, Obj):
        raise ManifestError(f"{what}: not a JSON object")
    return pairs


def go_string(s: str) -> str:
    """A JSON string as Go's encoding/json writes it (HTML-escaped, U+2028/9 escaped, bad UTF-16 -> U+FFFD)."""
    s = s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    out = ['"']
    for c in s:
        esc = _ESCAPES.get(c)
        out.append(esc if esc is not None else f"\\u{ord(c):04x}" if c < " " else c)
    out.append('"')
    return "".join(out)


def go_time(value: Any, what: str) -> str:
    """An RFC 3339 time as Go parses it and marshals it back (time.Time's JSON); null: the zero time."""
    if value is None:
        return ZERO_TIME
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise ManifestError(f"{what}: invalid time {value!r} (RFC 3339 expected)")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not (1 <= month <= 12 and 1 <= day <= _DAYS[month - 1] - (month == 2 and not leap)
            and hour < 24 and minute < 60 and second < 60):
        raise ManifestError(f"{what}: invalid time {value!r} (out of range)")
    frac = (match.group(7) or "")[:9].rstrip("0")
    zone = match.group(8)
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return value[:19] + (f".{frac}" if frac else "") + zone

# kinds: "str" "bool" "int" "time" "strings" ([]string) "strslice" (docker's StrSlice: a string or a
# list of strings) "set" (map[string]struct{}) "labels" (map[string]string), ("struct", FIELDS), ("ptr", kind)
Kind = Union[str, tuple]
Field = tuple[str, Kind, bool]          # (JSON name, kind, omitempty)

HEALTH: tuple[Field, ...] = (("Test", "strings", True), ("StartPeriod", "int", True), ("Interval", "int", True),
                             ("Timeout", "int", True), ("Retries", "int", True))
CONFIG: tuple[Field, ...] = (
    ("Hostname", "str", False), ("Domainname", "str", False), ("User", "str", False),
    ("AttachStdin", "bool", False), ("AttachStdout", "bool", False), ("AttachStderr", "bool", False),
    ("ExposedPorts", "set", True), ("Tty", "bool", False), ("OpenStdin", "bool", False),
    ("StdinOnce", "bool", False), ("Env", "strings", False), ("Cmd", "strslice", False),
    ("Healthcheck", ("ptr", ("struct", HEALTH)), True), ("ArgsEscaped", "bool", True), ("Image", "str", False),
    ("Volumes", "set", False), ("WorkingDir", "str", False), ("Entrypoint", "strslice", False),
    ("NetworkDisabled", "bool", True), ("MacAddress", "str", True), ("OnBuild", "strings", False),
    ("Labels", "labels", False), ("StopSignal", "str", True), ("StopTimeout", ("ptr", "int"), True),
    ("Shell", "strslice", True))
V1IMAGE: tuple[Field, ...] = (
    ("id", "str", True), ("parent", "str", True), ("comment", "str", True), ("created", "time", False),
    ("container", "str", True), ("container_config", ("struct", CONFIG), True),
    ("docker_version", "str", True), ("author", "str", True), ("config", ("ptr", ("struct", CONFIG)), True),
    ("architecture", "str", True), ("variant", "str", True), ("os", "str", True), ("Size", "int", True))

_INT64 = range(-(1 << 63), 1 << 63)


def _zero(kind: Kind) -> Any:
    if isinstance(kind, tuple):
        return {name: _zero(k) for name, k, _ in kind[1]} if kind[0] == "struct" else None
    return {"str": "", "bool": False, "int": 0, "time": ZERO_TIME}.get(kind)


class _Mismatch(Exception):
    def __init__(self, path: str, want: str) -> None:
        super().__init__(path, want)
        self.path, self.want = path, want


def _fail(path: str, want: str) -> _Mismatch:
    return _Mismatch(path, want)


def _decode(kind: Kind, value: Any, path: str) -> Any:
    if isinstance(kind, tuple):
        if kind[0] == "ptr":
            return None if value is None else _decode(kind[1], value, path)
        return _struct(kind[1], value, path)
    if value is None:
        return ZERO_TIME if kind == "time" else _zero(kind)
    if kind == "str":
        if not isinstance(value, str):
            raise _fail(path, "a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(path, "a boolean")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or value not in _INT64:
            raise _fail(path, "an integer")
        return value
    if kind == "time":
        try:
            return go_time(value, path)
        except ManifestError:
            raise _fail(path, "an RFC 3339 time") from None
    if kind == "strslice" and isinstance(value, str):
        return [value]
    if kind in ("strings", "strslice"):
        if not isinstance(value, list) or isinstance(value, Obj) or \
                not all(v is None or isinstance(v, str) for v in value):
            raise _fail(path, "a list of strings")
        return [v or "" for v in value]
    if not isinstance(value, Obj):
        raise _fail(path, "an object")
    out: dict[str, Any] = {}
    for key, item in value:
        if kind == "set":
            if item is not None and not isinstance(item, Obj):
                raise _fail(f"{path}.{key}", "an object")
            out[key] = True
        else:
            if item is not None and not isinstance(item, str):
                raise _fail(f"{path}.{key}", "a string")
            out[key] = item or ""
    return out


def _struct(fields: tuple[Field, ...], value: Any, path: str) -> dict[str, Any]:
    out = _zero(("struct", fields))
    if value is None:
        return out
    if not isinstance(value, Obj):
        raise _fail(path, "an object")
    kinds = {name: kind for name, kind, _ in fields}
    for key, item in value:
        name = key if key in kinds else next((n for n in kinds if n.lower() == key.lower()), None)
        if name is not None:
            out[name] = _decode(kinds[name], item, f"{path}.{name}" if path else name)
    return out


def decode(fields: tuple[Field, ...], pairs: Any, what: str) -> dict[str, Any]:
    """A JSON object (as Obj pairs) decoded into a Go struct of `fields`: keys matched exactly, else
    case-insensitively (a later duplicate wins); unknown keys ignored; null leaves a zero value; a value
    of the wrong type fails, as Go's Unmarshal does."""
    try:
        return _struct(fields, pairs, "")
    except _Mismatch as exc:
        raise ManifestError(f"{what}: {exc.path or 'the value'} is not {exc.want}") from None


def _empty(kind: Kind, value: Any) -> bool:
    if isinstance(kind, tuple) and kind[0] == "struct":
        return False
    return value is None or value == "" or value is False or (value == 0 and kind == "int") or \
        (isinstance(value, (list, dict)) and not value)


def encode(kind: Kind, value: Any) -> str:
    if isinstance(kind, tuple):
        if kind[0] == "ptr":
            return "null" if value is None else encode(kind[1], value)
        return "{" + ",".join(f"{go_string(name)}:{encode(k, value[name])}" for name, k, omit in kind[1]
                              if not (omit and _empty(k, value[name]))) + "}"
    if kind in ("str", "time"):
        return go_string(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "int":
        return str(value)
    if value is None:
        return "null"
    if kind in ("strings", "strslice"):
        return "[" + ",".join(go_string(v) for v in value) + "]"
    if kind == "set":
        return "{" + ",".join(f"{go_string(k)}:{{}}" for k in sorted(value)) + "}"
    return "{" + ",".join(f"{go_string(k)}:{go_string(value[k])}" for k in sorted(value)) + "}"


def encode_fields(image: dict[str, Any]) -> dict[str, str]:
    """The top-level fields json.Marshal(&Schema2V1Image) writes, as raw JSON text."""
    return {name: encode(kind, image[name]) for name, kind, omit in V1IMAGE if not (omit and _empty(kind, image[name]))}
