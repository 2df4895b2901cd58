"""Go values as text/template sees them: a static Go type beside each Python value (reflect.Value).

A `Value(type, raw)` pairs a `GoType` with its Python representation:
basic kinds hold str/int/float/bool; a slice holds a list of raw elements (None: a nil slice);
a map a dict (None: nil); a struct a dict of raw field values; a pointer the raw value it points
at (None: nil); an interface a `Value` (None: nil interface). `INVALID` is Go's zero reflect.Value
(a missing map key), which templates print as `<no value>`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

from fastsync.errors import FastsyncError

INT_KINDS = frozenset({"int", "int8", "int16", "int32", "int64"})
UINT_KINDS = frozenset({"uint", "uint8", "uint16", "uint32", "uint64", "uintptr"})
FLOAT_KINDS = frozenset({"float32", "float64"})


class TemplateError(FastsyncError):
    """A template failed to parse or to execute; the message is Go's (`template: NAME:LINE: ...`)."""


class GoError(FastsyncError):
    """A Go error value raised by a builtin or a method (text/template wraps it: `error calling F: ...`)."""


@dataclass(frozen=True)
class Method:
    """A method of a Go type: `fn(receiver_raw, *arg_raws)` returns the raw result."""

    params: tuple["GoType", ...]
    result: Optional["GoType"]
    fn: Callable[..., Any]
    results: int = 1          # Go's number of results (a template can call only 1, or 2 with error)


@dataclass(frozen=True, eq=False)
class GoType:
    kind: str
    name: str
    elem: Optional["GoType"] = None
    key: Optional["GoType"] = None
    fields: tuple[tuple[str, "GoType"], ...] = ()
    methods: Mapping[str, Method] = field(default_factory=dict)
    convert: Optional[Callable[[Any], Any]] = None     # plain Python data -> raw (time.Time parses text)

    def __str__(self) -> str:
        return self.name

    def field_type(self, name: str) -> Optional["GoType"]:
        for fname, ftype in self.fields:
            if fname == name:
                return ftype
        return None

    def method(self, name: str) -> Optional[Method]:
        """The method set of T (and of *T for a pointer: T's value-receiver methods)."""
        if name in self.methods:
            return self.methods[name]
        if self.kind == "ptr" and self.elem is not None:
            return self.elem.methods.get(name)
        return None

    @property
    def is_stringer(self) -> bool:
        return self.method("String") is not None

    @property
    def comparable(self) -> bool:
        if self.kind in ("slice", "map"):
            return False
        if self.kind == "struct":
            return all(t.comparable for _, t in self.fields)
        return True

    @property
    def nillable(self) -> bool:
        return self.kind in ("slice", "map", "ptr", "interface")


BOOL = GoType("bool", "bool")
INT = GoType("int", "int")
INT32 = GoType("int32", "int32")
INT64 = GoType("int64", "int64")
UINT8 = GoType("uint8", "uint8")
FLOAT64 = GoType("float64", "float64")
STRING = GoType("string", "string")
INTERFACE = GoType("interface", "interface {}")
EMPTY_STRUCT = GoType("struct", "struct {}")
ERROR = GoType("interface", "error")


def slice_of(elem: GoType) -> GoType:
    return GoType("slice", f"[]{elem.name}", elem=elem)


def map_of(key: GoType, elem: GoType) -> GoType:
    return GoType("map", f"map[{key.name}]{elem.name}", elem=elem, key=key)


def ptr_to(elem: GoType) -> GoType:
    return GoType("ptr", f"*{elem.name}", elem=elem)


def struct(name: str, fields: Sequence[tuple[str, GoType]], methods: Optional[Mapping[str, Method]] = None,
           convert: Optional[Callable[[Any], Any]] = None) -> GoType:
    return GoType("struct", name, fields=tuple(fields), methods=dict(methods or {}), convert=convert)


@dataclass(frozen=True)
class Value:
    type: Optional[GoType]
    raw: Any = None

    @property
    def valid(self) -> bool:
        return self.type is not None

    @property
    def kind(self) -> str:
        return self.type.kind if self.type is not None else "invalid"

    @property
    def is_nil(self) -> bool:
        return self.type is not None and self.type.nillable and self.raw is None

    def __len__(self) -> int:
        return len(self.raw or ())

    def index(self, i: int) -> "Value":
        if self.kind == "string":
            return Value(UINT8, self.raw.encode()[i])
        assert self.type is not None and self.type.elem is not None
        return Value(self.type.elem, self.raw[i])

    def elem(self) -> "Value":
        """Through a pointer or an interface (INVALID for a nil interface)."""
        if self.kind == "interface":
            return self.raw if self.raw is not None else INVALID
        assert self.type is not None and self.type.elem is not None
        return Value(self.type.elem, self.raw)

    def field(self, name: str) -> "Value":
        assert self.type is not None
        ftype = self.type.field_type(name)
        assert ftype is not None
        return Value(ftype, self.raw.get(name))


INVALID = Value(None)


def zero(t: GoType) -> Value:
    """Go's zero value of `t`."""
    if t.kind == "string":
        return Value(t, "")
    if t.kind == "bool":
        return Value(t, False)
    if t.kind in INT_KINDS or t.kind in UINT_KINDS:
        return Value(t, 0)
    if t.kind in FLOAT_KINDS:
        return Value(t, 0.0)
    if t.kind == "struct":
        return Value(t, {name: zero(ft).raw for name, ft in t.fields})
    return Value(t, None)


def typed(py: Any, t: GoType) -> Value:
    """A Value of type `t` from plain Python data (JSON-like: dict, list, str, numbers, None).
    Struct fields absent from the dict get their zero value; a None becomes nil / zero."""
    return Value(t, _raw(py, t))


def _raw(py: Any, t: GoType) -> Any:
    k = t.kind
    if k == "interface":
        return None if py is None else from_python(py)
    if py is None:
        return zero(t).raw
    if t.convert is not None:
        return t.convert(py)
    if k == "slice":
        assert t.elem is not None
        return [_raw(x, t.elem) for x in py]
    if k == "map":
        assert t.elem is not None
        return {str(key): _raw(val, t.elem) for key, val in py.items()}
    if k == "ptr":
        assert t.elem is not None
        return _raw(py, t.elem)
    if k == "struct":
        return {name: _raw(py.get(name), ft) for name, ft in t.fields}
    if k == "string":
        return str(py)
    if k == "bool":
        return bool(py)
    if k in INT_KINDS or k in UINT_KINDS:
        return int(py)
    return float(py)


def from_python(py: Any) -> Value:
    """A dynamically typed Value (as encoding/json decodes into interface{})."""
    if isinstance(py, Value):
        return py
    if isinstance(py, bool):
        return Value(BOOL, py)
    if isinstance(py, int):
        return Value(INT, py)
    if isinstance(py, float):
        return Value(FLOAT64, py)
    if isinstance(py, str):
        return Value(STRING, py)
    if isinstance(py, dict):
        return Value(map_of(STRING, INTERFACE), {str(k): from_python(v) for k, v in py.items()})
    if isinstance(py, (list, tuple)):
        return Value(slice_of(INTERFACE), [from_python(v) for v in py])
    if py is None:
        return Value(INTERFACE, None)
    raise TypeError(f"no Go type for {type(py).__name__}")


def indirect(v: Value) -> tuple[Value, bool]:
    """text/template's indirect: through pointers and interfaces until a nil or a concrete value."""
    while v.kind in ("ptr", "interface"):
        if v.raw is None:
            return v, True
        v = v.elem()
    return v, False


def indirect_interface(v: Value) -> Value:
    if v.kind != "interface":
        return v
    return v.elem()


def truth(v: Value) -> bool:
    """Go's template truth: false, 0, nil, and empty strings, slices and maps are false."""
    if not v.valid:
        return False
    k = v.kind
    if k in ("string", "slice", "map"):
        return bool(v.raw)
    if k == "bool":
        return bool(v.raw)
    if k in INT_KINDS or k in UINT_KINDS or k in FLOAT_KINDS:
        return v.raw != 0
    if k in ("ptr", "interface"):
        return v.raw is not None
    return True


def map_items(v: Value) -> list[tuple[Value, Value]]:
    """A map's entries sorted by key, as fmt and range order them."""
    assert v.type is not None and v.type.key is not None and v.type.elem is not None
    keys = sorted((v.raw or {}).keys())
    return [(Value(v.type.key, k), Value(v.type.elem, v.raw[k])) for k in keys]
