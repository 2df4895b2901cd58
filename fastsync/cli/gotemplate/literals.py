"""Literals of Go's text/template: strconv.Unquote / UnquoteChar and number constants (Go 1.19)."""
from __future__ import annotations

import re
from typing import Callable, Optional

from fastsync.cli.gotemplate import lex as L
from fastsync.cli.gotemplate.lex import Item
from fastsync.cli.gotemplate.nodes import NumberNode

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def unquote_char(s: str, quote: str) -> tuple[str, str]:
    """strconv.UnquoteChar: the first (possibly escaped) character of s and the rest; ValueError if bad."""
    c = s[0]
    if c == quote and quote in "'\"":
        raise ValueError
    if c != "\\":
        return c, s[1:]
    if len(s) < 2:
        raise ValueError
    c = s[1]
    if c in _ESCAPES:
        return _ESCAPES[c], s[2:]
    if c in "xuU":
        n = {"x": 2, "u": 4, "U": 8}[c]
        digits = s[2:2 + n]
        if len(digits) < n or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise ValueError
        v = int(digits, 16)
        if c != "x" and (v > 0x10FFFF or 0xD800 <= v < 0xE000):
            raise ValueError
        return chr(v), s[2 + n:]
    if c in "01234567":
        digits = s[1:4]
        if len(digits) < 3 or not all(d in "01234567" for d in digits) or int(digits, 8) > 255:
            raise ValueError
        return chr(int(digits, 8)), s[4:]
    if c == quote and c in "'\"":
        return c, s[2:]
    raise ValueError


def unquote(s: str) -> str:
    """strconv.Unquote for "..." and `...` (ValueError: invalid syntax)."""
    if len(s) < 2 or s[0] != s[-1] or s[0] not in '"`':
        raise ValueError
    body = s[1:-1]
    if s[0] == "`":
        if "`" in body:
            raise ValueError
        return body.replace("\r", "")
    if "\n" in body:
        raise ValueError
    out = []
    while body:
        c, body = unquote_char(body, '"')
        out.append(c)
    return "".join(out)


def _parse_int(text: str) -> Optional[int]:
    """strconv.ParseInt(text, 0, 64)."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in "+-" else text
    try:
        if re.fullmatch(r"0[0-7_]+", body) and "__" not in body:
            v = int(body.replace("_", ""), 8)
        elif re.fullmatch(r"0[xXoObB][0-9a-fA-F_]+|[1-9][0-9_]*|0", body):
            v = int(body, 0)
        else:
            return None
    except ValueError:
        return None
    v *= sign
    return v if -(1 << 63) <= v < (1 << 64) else None


def _parse_float(text: str) -> Optional[float]:
    try:
        if re.search(r"0[xX]", text):
            return float.fromhex(text.replace("_", ""))
        if re.fullmatch(r"[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?", text):
            return float(text.replace("_", ""))
    except ValueError:
        return None
    return None


def number_node(token: Item, errorf: Callable[[str], None]) -> NumberNode:
    """The NumberNode of a number or character token, as parse.(*Tree).newNumber builds it."""
    text = token.val
    n = NumberNode(token.pos, text)
    if token.typ == L.CHAR_CONSTANT:
        try:
            c, tail = unquote_char(text[1:], "'")
        except (ValueError, IndexError):
            errorf("invalid syntax")
        if tail != "'":
            errorf(f"malformed character constant: {text}")
        n.is_int = n.is_float = True
        n.int_value, n.float_value = ord(c), float(ord(c))
        return n
    if token.typ == L.COMPLEX or text.endswith("i"):
        body = text[:-1] if token.typ != L.COMPLEX else text
        try:
            value = complex(body.replace("i", "j")) if token.typ == L.COMPLEX else complex(0, float(body))
        except ValueError:
            errorf(f"illegal number syntax: {L.quote(text)}")
        n.is_complex, n.complex_value = True, value
        if value.imag == 0:
            n.is_float, n.float_value = True, value.real
            if value.real == int(value.real):
                n.is_int, n.int_value = True, int(value.real)
        return n
    i = _parse_int(text)
    if i is not None:          # an int64, or (is_uint only) a uint64 beyond int64
        n.is_int, n.is_uint = i < (1 << 63), i >= 0
        n.int_value, n.is_float, n.float_value = i, True, float(i)
        return n
    f = _parse_float(text)
    if f is not None:
        if not any(c in text for c in ".eEpP"):
            errorf(f"integer overflow: {L.quote(text)}")
        n.is_float, n.float_value = True, f
        if f == int(f) and abs(f) < 2 ** 63:
            n.is_int, n.int_value = True, int(f)
        return n
    errorf(f"illegal number syntax: {L.quote(text)}")
    raise AssertionError
