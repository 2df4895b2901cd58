"""fastsync.cli.gotemplate: Go's text/template semantics, table by table (skopeo-free; see
test_inspect_format.py for the differential tests against skopeo)."""
from __future__ import annotations

import pytest

from fastsync.cli.gotemplate import (BOOL, INT, INT64, INTERFACE, STRING, TabWriter, TemplateError, Value, from_python,
                                 map_of, parse, ptr_to, slice_of, struct, tabwrite_unflushed, typed)
from fastsync.cli.gotemplate.gofmt import go_float, quote, sprintf
from fastsync.cli.gotemplate.gotime import TIME, go_format, go_string, parse_rfc3339
from fastsync.cli.gotemplate.parse import unquote

INNER = struct("main.Inner", [("Count", INT), ("Tags", slice_of(STRING))])
OUTER = struct("main.Outer", [
    ("Name", STRING), ("Flag", BOOL), ("Size", INT64), ("Labels", map_of(STRING, STRING)), ("Inner", INNER),
    ("Ptr", ptr_to(INNER)), ("Nil", ptr_to(INNER)), ("When", ptr_to(TIME)), ("Any", INTERFACE),
    ("Empty", slice_of(STRING)), ("NilMap", map_of(STRING, INT))])
DATA = typed({"Name": "box", "Flag": True, "Size": 42, "Labels": {"b": "2", "a": "1"},
              "Inner": {"Count": 3, "Tags": ["x", "y"]}, "Ptr": {"Count": 7, "Tags": []},
              "When": "2024-02-29T13:14:15.5Z", "Any": {"k": [1, "two", None]}, "Empty": []}, OUTER)


def run(text: str, data: Value = DATA) -> str:
    return parse("t", text).execute(data)


OUTPUTS = [
    # fields, maps, pointers, interfaces
    ("{{.Name}} {{.Flag}} {{.Size}}", "box true 42"),
    ("{{.Inner.Count}} {{.Inner.Tags}} {{.Ptr.Count}}", "3 [x y] 7"),
    ("{{.Labels}} {{.Labels.a}} [{{.Labels.zz}}]", "map[a:1 b:2] 1 [<no value>]"),
    ("{{index .Labels \"zz\"}}|{{index .NilMap \"q\"}}", "|0"),
    ("{{.Nil}} {{.Empty}} {{.NilMap}}", "<nil> [] map[]"),
    ("{{.Any}} {{.Any.k}} {{index .Any.k 1}} {{index .Any.k 2}}", "map[k:[1 two <nil>]] [1 two <nil>] two <nil>"),
    ("{{.Inner}} {{.Ptr}}", "{3 [x y]} {7 []}"),
    ("{{printf \"%v|%+v\" .Inner .Ptr}}", "{3 [x y]}|&{Count:7 Tags:[]}"),
    ("{{.When}} {{.When.Year}} {{.When.Month}} {{.When.Nanosecond}}",
     "2024-02-29 13:14:15.5 +0000 UTC 2024 February 500000000"),
    ("{{printf \"%T|%T|%T|%T\" .Size .Labels .Nil .Any}}",
     "int64|map[string]string|*main.Inner|map[string]interface {}"),
    # variables and scope
    ("{{$n := .Name}}{{with .Inner}}{{$n}}:{{.Count}}{{end}}", "box:3"),
    ("{{$x := 1}}{{if true}}{{$x = 2}}{{$y := 3}}{{end}}{{$x}}", "2"),
    ("{{range $i, $t := .Inner.Tags}}{{$i}}{{$t}}{{$.Name}} {{end}}", "0xbox 1ybox "),
    ("{{range $t := .Inner.Tags}}{{$t}}{{end}}", "xy"),
    ("{{range $k, $v := .Labels}}{{$k}}{{$v}}{{end}}", "a1b2"),
    # control flow
    ("{{range .Empty}}x{{else}}empty{{end}}", "empty"),
    ("{{range .NilMap}}x{{else}}nil map{{end}}", "nil map"),
    ("{{range .Inner.Tags}}{{if eq . \"y\"}}{{break}}{{end}}{{.}}{{end}}", "x"),
    ("{{range .Inner.Tags}}{{if eq . \"x\"}}{{continue}}{{end}}{{.}}{{end}}", "y"),
    ("{{if .Empty}}a{{else if .Nil}}b{{else if .Size}}c{{else}}d{{end}}", "c"),
    ("{{with .Nil}}x{{else}}no{{end}} {{with .Ptr}}{{.Count}}{{end}}", "no 7"),
    ("{{if and .Flag (gt .Size 40)}}big{{end}}{{if or .Nil .Empty}}no{{else}}none{{end}}", "bignone"),
    ("{{block \"b\" .Inner}}[{{.Count}}]{{end}}{{template \"b\" .Ptr}}", "[3][7]"),
    # whitespace and comments
    ("a  {{- .Name -}}  \n b", "abox" + "b"),
    ("a {{/* note */}} b{{- /* trimmed */ -}} c", "a  bc"),
    ("{{ .Name }}{{\t.Size\n}}", "box42"),
    # literals and functions
    ("{{'a'}} {{0x1F}} {{0o17}} {{0b101}} {{1_000}} {{1.5e3}} {{-2}} {{.5}}", "97 31 15 5 1000 1500 -2 0.5"),
    ("{{`raw \\n`}}|{{\"esc\\t\\u00e9\\x41\"}}", "raw \\n|esc\t\u00e9A"),
    ("{{len .Name}} {{len .Labels}} {{len .Inner.Tags}} {{len \"héllo\"}}", "3 2 2 6"),
    ("{{index .Inner.Tags 1}} {{index .Name 0}} {{slice .Name 1 2}} {{slice .Inner.Tags 1}}", "y 98 o [y]"),
    ("{{not .Flag}} {{not .Empty}} {{and}}", None),
    ("{{eq .Size 42}} {{eq .Name \"a\" \"box\"}} {{ne .Name \"box\"}} {{lt 1.5 2.5}} {{ge \"b\" \"a\"}}",
     "true true false true true"),
    ("{{print \"a\" 1 2 \"b\" true}}|{{println .Name 1}}", "a1 2btrue|box 1\n"),
    ("{{html \"<a href='x'>&</a>\"}} {{js \"it's <b>\"}} {{urlquery \"a b/c?d=é\"}}",
     "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt; it\\'s \\u003Cb\\u003E a+b%2Fc%3Fd%3D%C3%A9"),
    ("{{.Name | printf \"%s-%s\" \"x\" | len}}", "5"),
    ("{{(index .Inner.Tags 0) | printf \"%q\"}} {{(.Ptr).Count}}", "\"x\" 7"),
]


@pytest.mark.parametrize("text,expected", OUTPUTS)
def test_template_output(text: str, expected: str) -> None:
    if expected is None:
        with pytest.raises(TemplateError, match="wrong number of args for and: want at least 1 got 0"):
            run(text)
        return
    assert run(text) == expected


ERRORS = [
    ("{{.Missing}}", 't:1:2: executing "t" at <.Missing>: can\'t evaluate field Missing in type main.Outer'),
    ("{{.Inner.Missing}}", "can't evaluate field Missing in type main.Inner"),
    ("{{.Nil.Count}}", "nil pointer evaluating *main.Inner.Count"),
    ("{{.Name.X}}", "can't evaluate field X in type string"),
    ("{{nope}}", "template: t:1: function \"nope\" not defined"),
    ("{{$u}}", 'template: t:1: undefined variable "$u"'),
    ("{{if .Flag}}", "template: t:1: unexpected EOF"),
    ("x\n{{end}}", "template: t:2: unexpected {{end}}"),
    ("{{range .Name}}{{end}}", "range can't iterate over box"),
    ("{{index .Inner.Tags 9}}", "error calling index: index out of range: 9"),
    ("{{index .Size 1}}", "error calling index: can't index item of type int64"),
    ("{{len .Size}}", "error calling len: len of type int64"),
    ("{{lt .Inner.Tags 1}}", "error calling lt: invalid type for comparison"),
    ("{{eq .Name 1}}", "error calling eq: incompatible types for comparison"),
    ("{{slice .Name 2 1}}", "error calling slice: invalid slice index: 2 > 1"),
    ("{{.Name 1}}", "Name has arguments but cannot be invoked as function"),
    ("{{.Labels.a 1}}", "a is not a method but has arguments"),
    ("{{1 2}}", "can't give argument to non-function 1"),
    ("{{printf 1}}", 'executing "t" at <1>: expected string; found 1'),
    ("{{.When.Format}}", "wrong number of args for Format: want 1 got 0"),
    ("{{.When.Clock}}", 'can\'t call method/function "Clock" with 3 results'),
    ("{{break}}", "template: t:1: {{break}} outside {{range}}"),
    ("{{template \"zz\"}}", 'template "zz" not defined'),
    ("{{\"abc}}", "template: t:1: unterminated quoted string"),
    ("{{/* x }}", "template: t:1: unclosed comment"),
    ("{{(.Name}}", "template: t:1: unclosed left paren"),
    ("{{.Name)}}", 'template: t:1: unexpected ")" in command'),
    ("{{9223372036854775808}}", "at <9223372036854775808>: 9223372036854775808 overflows int"),
    ("{{18446744073709551616}}", 'template: t:1: integer overflow: "18446744073709551616"'),
    ("{{$x := 1}}{{$x.y}}", "can't evaluate field y in type int"),
    ("{{range $a, $b, $c := .Labels}}{{end}}", "template: t:1: too many declarations in range"),
    ("{{with $a, $b := .Labels}}{{end}}", "template: t:1: too many declarations in with"),
    ("{{nil}}", "nil is not a command"),
    ("{{.Name | 3}}", "template: t:1: non executable command in pipeline stage 2"),
    ("", 'template: t: "t" is an incomplete or empty template'),
]


@pytest.mark.parametrize("text,fragment", ERRORS)
def test_template_error(text: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        run(text)
    assert fragment in str(info.value)


def test_output_before_an_error_is_kept() -> None:
    with pytest.raises(TemplateError) as info:
        run("{{.Name}}-{{.Missing}}")
    assert info.value.partial == "box-"   # type: ignore[attr-defined]


def test_untyped_python_data_behaves_as_decoded_json() -> None:
    data = from_python({"list": [3, 1.5, True, "s", {"x": None}], "n": 0})
    assert run("{{.list}} {{.n}} {{if .n}}y{{else}}n{{end}} {{(index .list 4).x}}", data) == \
        "[3 1.5 true s map[x:<nil>]] 0 n <nil>"


SPRINTF = [
    ("%d|%5d|%-5d|%05d|%+d|%x|%X|%o|%#o|%#x|%b|%c|%q|%U", [255, 3, 3, -3, 3, 255, 255, 8, 8, 255, 5, 65, 65, 0x1F600],
     "255|    3|3    |-0003|+3|ff|FF|10|010|0xff|101|A|'A'|U+1F600"),
    ("%s|%10s|%-4s|%.2s|%q|%x|% x|%X", ["go", "go", "go", "gopher", 'a"b', "hi", "hi", "hi"],
     'go|        go|go  |go|"a\\"b"|6869|68 69|6869'),
    ("%v|%.2f|%8.3f|%e|%E|%g|%G|%v|%v|%v", [1.0, 3.14159, 2.5, 123456.0, 0.5, 1e-7, 1e21, 1e20, 123456789.0, 0.1],
     "1|3.14|   2.500|1.234560e+05|5.000000E-01|1e-07|1E+21|1e+20|1.23456789e+08|0.1"),
    ("%t|%v|%s", [True, False, True], "true|false|%!s(bool=true)"),
    ("%d %d", [1], "1 %!d(MISSING)"),
    ("%d", [1, "x"], "1%!(EXTRA string=x)"),
    ("%*d|%-*d|%.*f", [4, 7, 3, 7, 1, 2.25], "   7|7  |2.2"),
    ("100%%", [], "100%"),
    ("%z", [1], "%!z(int=1)"),
]


@pytest.mark.parametrize("fmt,args,expected", SPRINTF)
def test_sprintf_as_go(fmt: str, args: list, expected: str) -> None:
    assert sprintf(fmt, [from_python(a) for a in args]) == expected


def test_go_float_shortest_forms() -> None:
    assert [go_float(x) for x in (0.0, 1e6, 1e5, 1.5, 1e-5, 123456.7, -2.0)] == \
        ["0", "1e+06", "100000", "1.5", "1e-05", "123456.7", "-2"]


def test_strings_quote_and_unquote_as_strconv() -> None:
    assert quote('a"\\\n\t\x01é\u2028') == '"a\\"\\\\\\n\\t\\x01é\\u2028"'
    assert unquote('"a\\x41\\101\\u00e9\\U0001F600"') == "aAAé\U0001F600"
    assert unquote("`a\\n`") == "a\\n"
    for bad in ('"a', "'a'", '"\\q"', '"\\x4"'):
        with pytest.raises(ValueError):
            unquote(bad)


def test_time_formats_as_go() -> None:
    t = parse_rfc3339("2023-01-02T03:04:05.000120Z")
    assert go_string(t) == "2023-01-02 03:04:05.00012 +0000 UTC"
    assert go_format(t, "2006-01-02T15:04:05Z07:00") == "2023-01-02T03:04:05Z"
    assert go_format(t, "Mon, 02 Jan 2006 15:04:05.000 MST") == "Mon, 02 Jan 2023 03:04:05.000 UTC"
    assert go_format(t, "3:04PM _2 January 06 .999999") == "3:04AM  2 January 23 .00012"
    off = parse_rfc3339("2023-06-30T23:30:00+02:00")
    assert go_string(off) == "2023-06-30 23:30:00 +0200 +0200"
    assert go_format(off, "2006-01-02T15:04:05Z07:00 -07 -0700") == "2023-06-30T23:30:00+02:00 +02 +0200"
    assert run("{{.When.Unix}} {{.When.UTC.Hour}} {{.When.Weekday}}") == "1709212455 13 Thursday"


TABS = [
    ("plain\n", "plain\n"),
    ("no newline at the end", ""),
    ("a\tb\n", ""),                                   # a tabbed line waits for a tab-free one, never flushed
    ("a\tb\nend\n", "a       b\nend\n"),
    ("name\tsize\nlonger-name\t1\n\n", "name         size\nlonger-name  1\n\n"),
    ("x\ty\tz\nxx\tyyyyyyyyy\tz\n-\n", "x       y          z\nxx      yyyyyyyyy  z\n-\n"),
    ("a\tb\fc\n", "a       b\nc\n"),
]


@pytest.mark.parametrize("text,expected", TABS)
def test_tabwriter_as_skopeo_leaves_it_unflushed(text: str, expected: str) -> None:
    assert tabwrite_unflushed(text) == expected
    w = TabWriter()
    for ch in text:                                   # byte by byte gives the same as all at once
        w.write(ch)
    assert w.flushed_output() == expected
