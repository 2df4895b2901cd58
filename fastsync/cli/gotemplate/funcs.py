"""text/template's builtin functions (Go 1.19), over `Value`s, with Go's error texts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from fastsync.cli.gotemplate import gofmt
from fastsync.cli.gotemplate.values import (BOOL, FLOAT_KINDS, INT, INT_KINDS, STRING, UINT_KINDS, GoError, GoType, Value, indirect,
                     indirect_interface, truth, zero)

# parameter kinds: "value" (a reflect.Value: anything, even an invalid value), "any" (interface{}),
# or a GoType (a typed parameter, e.g. STRING for printf's format)
Param = object


@dataclass(frozen=True)
class Func:
    params: tuple[Param, ...]
    variadic: bool
    fn: Callable[..., Value]
    name: str = ""


ZERO_VALUE_ERROR = "reflect: call of reflect.Value.Type on zero Value"


def _index_arg(index: Value, cap: int) -> int:
    index = indirect_interface(index)
    if index.kind in INT_KINDS or index.kind in UINT_KINDS:
        x = index.raw
    elif not index.valid:
        raise GoError("cannot index slice/array with nil")
    else:
        raise GoError(f"cannot index slice/array with type {index.type}")
    if x < 0 or x > cap:
        raise GoError(f"index out of range: {x}")
    return x


def _is_nil(v: Value) -> bool:
    return not v.valid or (v.type is not None and v.type.nillable and v.raw is None)


def f_index(item: Value, *indexes: Value) -> Value:
    item = indirect_interface(item)
    if not item.valid:
        raise GoError("index of untyped nil")
    for index in indexes:
        index = indirect_interface(index)
        item, isnil = indirect(item)
        if isnil:
            raise GoError("index of nil pointer")
        if item.kind in ("slice", "string"):
            n = len(item.raw.encode()) if item.kind == "string" else len(item)
            x = _index_arg(index, n)
            if x == n:
                raise GoError("reflect: slice index out of range" if item.kind == "slice"
                              else "reflect: string index out of range")
            item = item.index(x)
        elif item.kind == "map":
            assert item.type is not None and item.type.key is not None and item.type.elem is not None
            if not index.valid:
                raise GoError(f"value is nil; should be of type {item.type.key}")
            if index.type is not item.type.key and index.type.name != item.type.key.name:
                raise GoError(f"value has type {index.type}; should be {item.type.key}")
            raw = (item.raw or {})
            item = Value(item.type.elem, raw[index.raw]) if index.raw in raw else zero(item.type.elem)
        else:
            raise GoError(f"can't index item of type {item.type}")
    return item


def f_slice(item: Value, *indexes: Value) -> Value:
    item = indirect_interface(item)
    if not item.valid:
        raise GoError("slice of untyped nil")
    if len(indexes) > 3:
        raise GoError(f"too many slice indexes: {len(indexes)}")
    if item.kind == "string":
        if len(indexes) == 3:
            raise GoError("cannot 3-index slice a string")
        data = item.raw.encode()
    elif item.kind == "slice":
        data = item.raw or []
    else:
        raise GoError(f"can't slice item of type {item.type}")
    idx = [0, len(data), len(data)]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, len(data))
    if idx[0] > idx[1]:
        raise GoError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise GoError(f"invalid slice index: {idx[1]} > {idx[2]}")
    part = data[idx[0]:idx[1]]
    if item.kind == "string":
        return Value(item.type, part.decode("utf-8", "replace"))
    return Value(item.type, list(part) if item.raw is not None else None)


def f_len(item: Value) -> Value:
    item, isnil = indirect(item)
    if isnil:
        raise GoError("len of nil pointer")
    if item.kind == "string":
        return Value(INT, len(item.raw.encode()))
    if item.kind in ("slice", "map"):
        return Value(INT, len(item))
    if not item.valid:
        raise GoError(ZERO_VALUE_ERROR)
    raise GoError(f"len of type {item.type}")


def f_not(arg: Value) -> Value:
    return Value(BOOL, not truth(arg))


def _basic_kind(v: Value) -> str:
    k = v.kind
    if k == "bool":
        return "bool"
    if k in INT_KINDS:
        return "int"
    if k in UINT_KINDS:
        return "uint"
    if k in FLOAT_KINDS:
        return "float"
    if k == "complex128":
        return "complex"
    if k == "string":
        return "string"
    return "invalid"


def _eq(arg1: Value, *arg2: Value) -> bool:
    arg1 = indirect_interface(arg1)
    if not arg2:
        raise GoError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in arg2:
        arg = indirect_interface(arg)
        k2 = _basic_kind(arg)
        if k1 != k2:
            if {k1, k2} == {"int", "uint"}:
                if arg1.raw == arg.raw:
                    return True
                continue
            if arg1.valid and arg.valid:
                raise GoError("incompatible types for comparison")
            continue
        if k1 != "invalid":
            if arg1.raw == arg.raw:
                return True
            continue
        if not (arg1.kind == arg.kind or not arg1.valid or not arg.valid):
            raise GoError(f"non-comparable types {gofmt.format_value(arg1, gofmt.Spec())}: {arg1.type}, "
                          f"{arg.type}: {gofmt.format_value(arg, gofmt.Spec())}")
        if _is_nil(arg1) or _is_nil(arg):
            if _is_nil(arg1) == _is_nil(arg):
                return True
            continue
        assert arg.type is not None
        if not arg.type.comparable:
            raise GoError(f"non-comparable type {gofmt.format_value(arg, gofmt.Spec())}: {arg.type}")
        if arg1.type is arg.type and arg1.raw == arg.raw:
            return True
    return False


def _lt(arg1: Value, arg2: Value) -> bool:
    arg1, arg2 = indirect_interface(arg1), indirect_interface(arg2)
    k1, k2 = _basic_kind(arg1), _basic_kind(arg2)
    if k1 == "invalid" or k2 == "invalid":
        raise GoError("invalid type for comparison")
    if k1 != k2:
        if {k1, k2} == {"int", "uint"}:
            return arg1.raw < arg2.raw
        raise GoError("incompatible types for comparison")
    if k1 in ("bool", "complex"):
        raise GoError("invalid type for comparison")
    return arg1.raw < arg2.raw


def f_eq(arg1: Value, *arg2: Value) -> Value:
    return Value(BOOL, _eq(arg1, *arg2))


def f_ne(a: Value, b: Value) -> Value:
    return Value(BOOL, not _eq(a, b))


def f_lt(a: Value, b: Value) -> Value:
    return Value(BOOL, _lt(a, b))


def f_le(a: Value, b: Value) -> Value:
    return Value(BOOL, _lt(a, b) or _eq(a, b))


def f_gt(a: Value, b: Value) -> Value:
    return Value(BOOL, not (_lt(a, b) or _eq(a, b)))


def f_ge(a: Value, b: Value) -> Value:
    return Value(BOOL, not _lt(a, b))


def f_call(fn: Value, *args: Value) -> Value:
    fn = indirect_interface(fn)
    if not fn.valid:
        raise GoError("call of nil")
    raise GoError(f"non-function of type {fn.type}")


def _printable(v: Value) -> Value:
    if v.kind == "ptr":
        v, _ = indirect(v)
    if not v.valid or (v.kind == "interface" and v.raw is None):
        return Value(STRING, "<no value>")
    return v


def _eval_args(args: Sequence[Value]) -> str:
    if len(args) == 1 and args[0].kind == "string" and args[0].type is STRING:
        return args[0].raw
    return gofmt.sprint([_printable(a) for a in args])


def html_escape(s: str) -> str:
    return (s.replace("\0", "\ufffd").replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;")
            .replace("<", "&lt;").replace(">", "&gt;"))


def js_escape(s: str) -> str:
    named = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}
    out = []
    for ch in s:
        if ch in named:
            out.append(named[ch])
        elif ord(ch) < 0x20 or (ord(ch) >= 0x80 and not ch.isprintable()):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def query_escape(s: str) -> str:
    out = []
    for b in s.encode():
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "-_.~"):
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _str(s: str) -> Value:
    return Value(STRING, s)


BUILTINS: dict[str, Func] = {
    "and": Func(("value", "value"), True, lambda *a: a[-1]),     # evaluated lazily by the executor
    "or": Func(("value", "value"), True, lambda *a: a[-1]),
    "call": Func(("value", "value"), True, f_call),
    "html": Func(("any",), True, lambda *a: _str(html_escape(_eval_args(a)))),
    "index": Func(("value", "value"), True, f_index),
    "slice": Func(("value", "value"), True, f_slice),
    "js": Func(("any",), True, lambda *a: _str(js_escape(_eval_args(a)))),
    "len": Func(("value",), False, f_len),
    "not": Func(("value",), False, f_not),
    "print": Func(("any",), True, lambda *a: _str(gofmt.sprint(a))),
    "printf": Func((STRING, "any"), True, lambda f, *a: _str(gofmt.sprintf(f.raw, a))),
    "println": Func(("any",), True, lambda *a: _str(gofmt.sprintln(a))),
    "urlquery": Func(("any",), True, lambda *a: _str(query_escape(_eval_args(a)))),
    "eq": Func(("value", "value"), True, f_eq),
    "ge": Func(("value", "value"), False, f_ge),
    "gt": Func(("value", "value"), False, f_gt),
    "le": Func(("value", "value"), False, f_le),
    "lt": Func(("value", "value"), False, f_lt),
    "ne": Func(("value", "value"), False, f_ne),
}


def param_type_name(p: Param) -> str:
    if p == "value":
        return "reflect.Value"
    if p == "any":
        return "interface {}"
    assert isinstance(p, GoType)
    return p.name


def fixed_params(f: Func) -> int:
    return len(f.params) - 1 if f.variadic else len(f.params)

