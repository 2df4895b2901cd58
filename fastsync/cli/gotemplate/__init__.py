"""Go's text/template in pure Python: what `skopeo inspect --format` users write, with Go 1.19's semantics.

    tmpl = parse("skopeo inspect", "{{range .Layers}}{{.}} {{end}}")
    text = tmpl.execute(typed(data, MY_STRUCT_TYPE))

Fields, map keys, methods of typed values, `$` and variables (`:=`, `=`), `if`/`else if`/`with`/`range`
(`$i, $v :=`, `else`, `break`, `continue`), `block`/`template`, the builtin functions (`and or not eq ne
lt le gt ge index slice len print printf println html js urlquery call`), pipelines and parenthesised
pipelines, comments and `{{- -}}` trimming; values print as Go's fmt prints them (maps sorted as
`map[k:v]`, slices `[a b]`, a missing key `<no value>`). Parse and execution errors carry Go's text
(`template: NAME:1: function "foo" not defined`, `... can't evaluate field X in type T`).

No I/O; a data set is a `Value`: a Go type (see `values`) beside plain Python data.
"""
from __future__ import annotations

from dataclasses import dataclass

from fastsync.cli.gotemplate.exec import execute
from fastsync.cli.gotemplate.funcs import BUILTINS
from fastsync.cli.gotemplate.nodes import ListNode
from fastsync.cli.gotemplate.parse import parse as _parse
from fastsync.cli.gotemplate.tabwriter import TabWriter, tabwrite_unflushed
from fastsync.cli.gotemplate.values import (BOOL, EMPTY_STRUCT, ERROR, FLOAT64, INT, INT64, INTERFACE, STRING, GoError, GoType, Method,
                     TemplateError, Value, from_python, map_of, ptr_to, slice_of, struct, typed)

__all__ = ["Template", "parse", "TemplateError", "GoError", "GoType", "Method", "Value", "typed", "from_python",
           "struct", "slice_of", "map_of", "ptr_to", "BOOL", "INT", "INT64", "FLOAT64", "STRING", "INTERFACE",
           "EMPTY_STRUCT", "ERROR", "TabWriter", "tabwrite_unflushed"]


@dataclass(frozen=True)
class Template:
    name: str
    text: str
    trees: dict[str, ListNode]

    def execute(self, data: Value) -> str:
        """The output; a TemplateError (with `.partial`, the output before the failure) otherwise."""
        if not self.trees.get(self.name) or not self.trees[self.name].nodes:
            raise TemplateError(f'template: {self.name}: "{self.name}" is an incomplete or empty template')
        return execute(self.name, self.text, self.trees, data)


def parse(name: str, text: str) -> Template:
    """Parse `text` as Go's template.New(name).Parse(text) does (only the builtin functions exist)."""
    return Template(name, text, _parse(name, text, set(BUILTINS)))
