"""Go's fmt package over `Value`s: Sprint, Sprintln, Sprintf and the %v printing of every kind."""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Optional, Sequence

from fastsync.cli.gotemplate.values import FLOAT_KINDS, INT_KINDS, INTERFACE, UINT_KINDS, Value, map_items


@dataclass
class Spec:
    verb: str = "v"
    plus: bool = False
    plusv: bool = False      # %+v: struct field names
    minus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    width: Optional[int] = None
    prec: Optional[int] = None


def quote(s: str, ascii_only: bool = False) -> str:
    """strconv.Quote."""
    out = ['"']
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
             "\\": "\\\\", '"': '\\"'}
    for ch in s:
        if ch in named:
            out.append(named[ch])
        elif ch.isprintable() and (not ascii_only or ord(ch) < 0x80):
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _pad(s: str, spec: Spec, zero_ok: bool = True) -> str:
    if spec.width is None or len(s) >= spec.width:
        return s
    fill = spec.width - len(s)
    if spec.minus:
        return s + " " * fill
    if spec.zero and zero_ok:
        return "0" * fill + s
    return " " * fill + s


def go_float(x: float, verb: str = "g", prec: Optional[int] = None) -> str:
    """strconv.FormatFloat for 'e', 'E', 'f', 'F', 'g', 'G' (prec None: the shortest exact form)."""
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if math.isnan(x):
        return "NaN"
    upper = verb in "EG"
    v = verb.lower()
    if v == "f":
        return f"{x:.{6 if prec is None else prec}f}"
    if v == "e":
        if prec is None:
            digits, dp = _shortest(x)
            return _exp_form(x, digits, dp, len(digits) - 1, upper)
        s = f"{x:.{prec}e}"
        return s.upper() if upper else s
    # 'g'
    if prec is None:
        digits, dp = _shortest(x)
        eprec = 6
        if eprec > len(digits) and len(digits) >= dp:
            eprec = len(digits)
        exp = dp - 1
        if exp < -4 or exp >= eprec:
            return _exp_form(x, digits, dp, len(digits) - 1, upper)
        return f"{x:.{max(len(digits) - dp, 0)}f}"
    s = f"{x:.{prec or 1}g}"
    return s.upper() if upper else s


def _shortest(x: float) -> tuple[str, int]:
    """The shortest decimal digits of x and the decimal point position (x = 0.DIGITS * 10**dp)."""
    if x == 0:
        return "0", 1
    sign, digits, exponent = Decimal(repr(abs(x))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    dp = len(digits) + int(exponent)
    return text, dp


def _exp_form(x: float, digits: str, dp: int, prec: int, upper: bool) -> str:
    mant = digits[0] + ("." + digits[1:].ljust(prec, "0") if prec > 0 else "")
    exp = dp - 1 if x != 0 else 0
    e = "E" if upper else "e"
    return f"{'-' if x < 0 else ''}{mant}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fmt_int(n: int, spec: Spec) -> str:
    verb = spec.verb
    if verb == "c":
        return _pad(chr(n), spec, False)
    if verb == "q":
        return _pad("'" + quote(chr(n))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'", spec, False)
    if verb == "U":
        s = f"U+{n:04X}"
        return _pad(s + (f" '{chr(n)}'" if spec.sharp else ""), spec, False)
    base = {"d": 10, "v": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}[verb]
    digits = {2: f"{abs(n):b}", 8: f"{abs(n):o}", 10: str(abs(n)), 16: f"{abs(n):x}"}[base]
    if verb == "X":
        digits = digits.upper()
    if spec.prec is not None:
        digits = digits.rjust(spec.prec, "0") if not (spec.prec == 0 and n == 0) else ""
    prefix = ""
    if verb == "O" or (spec.sharp and verb == "o" and not digits.startswith("0")):
        prefix = "0o" if verb == "O" else "0"
    elif spec.sharp and verb in "xX":
        prefix = "0x" if verb == "x" else "0X"
    elif spec.sharp and verb == "b":
        prefix = "0b"
    sign = "-" if n < 0 else "+" if spec.plus else " " if spec.space else ""
    if spec.zero and not spec.minus and spec.width is not None and spec.prec is None:
        digits = digits.rjust(spec.width - len(sign) - len(prefix), "0")
    return _pad(sign + prefix + digits, Spec(width=spec.width, minus=spec.minus))


def _fmt_float(x: float, spec: Spec) -> str:
    verb = "g" if spec.verb == "v" else spec.verb
    s = go_float(x, verb, 6 if spec.prec is None and verb in "eEfF" else spec.prec)
    if spec.sharp and verb in "gG" and "." not in s and "e" not in s.lower():
        s += "."
    if not s.startswith("-") and not s.startswith("+"):
        s = ("+" if spec.plus else " " if spec.space else "") + s
    elif s.startswith("+") and not spec.plus:       # +Inf keeps its sign only with the flag
        s = (" " if spec.space else "") + s[1:] if s == "+Inf" else s
    if spec.zero and not spec.minus and spec.width is not None and not math.isinf(x) and not math.isnan(x):
        sign = s[0] if s[0] in "+- " else ""
        return sign + s[len(sign):].rjust(spec.width - len(sign), "0")
    return _pad(s, Spec(width=spec.width, minus=spec.minus))


def _fmt_str(s: str, spec: Spec) -> str:
    verb = spec.verb
    if spec.prec is not None and verb in "vs":
        s = s[:spec.prec]
    if verb == "q":
        return _pad(("`" + s + "`") if spec.sharp and "`" not in s and s.isprintable() else quote(s, spec.plus),
                    spec, False)
    if verb in "xX":
        data = s.encode()
        sep = " " if spec.space else ""
        pre = ("0x" if verb == "x" else "0X") if spec.sharp else ""
        parts = [pre + (f"{b:02x}" if verb == "x" else f"{b:02X}") for b in data]
        if sep:
            return _pad(sep.join(parts), spec, False)
        return _pad(pre + "".join(p[len(pre):] for p in parts), spec, False)
    return _pad(s, spec)


def bad_verb(v: Value, spec: Spec) -> str:
    if not v.valid or (v.kind == "interface" and v.raw is None):
        return f"%!{spec.verb}(<nil>)"
    return f"%!{spec.verb}({v.type}={format_value(v, Spec())})"


def format_value(v: Value, spec: Spec, depth: int = 0) -> str:
    """fmt's printValue for one operand (spec.verb among v s d q x X t f e g b o c U ...)."""
    verb = spec.verb
    if not v.valid:
        return "<invalid reflect.Value>" if depth == 0 else "<invalid Value>"
    if v.kind == "interface":
        if v.raw is None:
            return _pad("<nil>", spec, False) if verb == "v" or depth > 0 else bad_verb(v, spec)
        return format_value(v.raw, spec, depth + 1)
    t = v.type
    assert t is not None
    if verb == "T":
        return _pad(t.name, spec)
    stringer = t.method("String")
    if stringer is not None and verb in "vsqxX" and not spec.sharp:
        if v.kind == "ptr" and v.raw is None:
            return _pad("<nil>", spec)
        return _fmt_str(stringer.fn(v.raw), spec)
    k = v.kind
    if k == "bool":
        return _pad("true" if v.raw else "false", spec) if verb in "tv" else bad_verb(v, spec)
    if k in INT_KINDS or k in UINT_KINDS:
        return _fmt_int(v.raw, spec) if verb in "vdbcoOqxXU" else bad_verb(v, spec)
    if k in FLOAT_KINDS:
        return _fmt_float(v.raw, spec) if verb in "vbeEfFgGxX" else bad_verb(v, spec)
    if k == "string":
        return _fmt_str(v.raw, spec) if verb in "vsqxX" else bad_verb(v, spec)
    if k == "complex128":
        if verb not in "veEfFgG":
            return bad_verb(v, spec)
        inner = Spec(verb=verb, prec=spec.prec)
        re_part = _fmt_float(v.raw.real, inner)
        inner.plus = True
        return _pad(f"({re_part}{_fmt_float(v.raw.imag, inner)}i)", Spec(width=spec.width, minus=spec.minus))
    if k == "map":
        items = " ".join(f"{format_value(key, spec, depth + 1)}:{format_value(val, spec, depth + 1)}"
                         for key, val in map_items(v))
        return f"map[{items}]"
    if k == "struct":
        parts = []
        for name, _ in t.fields:
            text = format_value(v.field(name), spec, depth + 1)
            parts.append(f"{name}:{text}" if spec.plusv else text)
        return "{" + " ".join(parts) + "}"
    if k == "slice":
        return "[" + " ".join(format_value(v.index(i), spec, depth + 1) for i in range(len(v))) + "]"
    if k == "ptr":
        if v.raw is None:
            return _pad("<nil>", spec)
        inner = v.elem()
        if depth == 0 and inner.kind in ("struct", "slice", "map"):
            return "&" + format_value(inner, spec, depth + 1)
        return "0xc000010000"
    return bad_verb(v, spec)


def _is_string(v: Value) -> bool:
    v = v.raw if v.kind == "interface" and v.raw is not None else v
    return v.kind == "string"


def sprint(args: Sequence[Value]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    prev_string = False
    for i, a in enumerate(args):
        is_string = _is_string(a)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(format_value(a, Spec()))
        prev_string = is_string
    return "".join(out)


def sprintln(args: Sequence[Value]) -> str:
    return " ".join(format_value(a, Spec()) for a in args) + "\n"


def sprintf(fmt: str, args: Sequence[Value]) -> str:
    """fmt.Sprintf with Go's flags, width, precision (and `*`), verbs and its %!verb(...) notes."""
    out: list[str] = []
    i, n, argi = 0, len(fmt), 0
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        spec = Spec()
        while i < n and fmt[i] in "+-# 0":
            c = fmt[i]
            spec.plus |= c == "+"
            spec.minus |= c == "-"
            spec.sharp |= c == "#"
            spec.space |= c == " "
            spec.zero |= c == "0"
            i += 1
        spec.zero = spec.zero and not spec.minus
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and args[argi].kind in INT_KINDS:
                spec.width = args[argi].raw
                if spec.width < 0:
                    spec.minus, spec.width = True, -spec.width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > start:
                spec.width = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and args[argi].kind in INT_KINDS:
                    spec.prec = args[argi].raw if args[argi].raw >= 0 else None
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                spec.prec = int(fmt[start:i] or 0)
        if i >= n:
            out.append("%!(NOVERB)")
            break
        spec.verb = fmt[i]
        i += 1
        if spec.verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{spec.verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        if spec.verb == "v" and spec.plus:
            spec.plus, spec.plusv = False, True
        out.append(format_value(arg, spec))
    if argi < len(args):
        extra = ", ".join("<nil>" if a.kind == "interface" and a.raw is None
                          else f"{a.type}={format_value(a, Spec())}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


NIL = Value(INTERFACE, None)
