"""Executing a parsed template (Go 1.19's text/template exec.go semantics and error messages)."""
from __future__ import annotations

from typing import Any, Optional

from fastsync.cli.gotemplate import gofmt
from fastsync.cli.gotemplate.evaluate import Evaluator
from fastsync.cli.gotemplate.nodes import ActionNode, BranchNode, BreakNode, ContinueNode, ListNode, Node, TemplateNode, TextNode
from fastsync.cli.gotemplate.values import INT, TemplateError, Value, indirect, indirect_interface, map_items, truth

MAX_DEPTH = 100000


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class State(Evaluator):
    def __init__(self, name: str, parse_name: str, text: str, trees: dict[str, ListNode], out: list[str],
                 depth: int = 0) -> None:
        self.name = name
        self.parse_name = parse_name
        self.text = text
        self.trees = trees
        self.out = out
        self.depth = depth
        self.node: Optional[Node] = None
        self.vars: list[list[Any]] = []

    # -- errors and variables --
    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, msg: str) -> None:
        if self.node is None:
            raise TemplateError(f"template: {self.name}: {msg}")
        pos = self.node.pos
        before = self.text[:pos]
        nl = before.rfind("\n")
        col = pos if nl < 0 else pos - (nl + 1)
        line = 1 + before.count("\n")
        raise TemplateError(f"template: {self.parse_name}:{line}:{col}: executing {gofmt.quote(self.name)} "
                            f"at <{self.node}>: {msg}")

    def push(self, name: str, value: Value) -> None:
        self.vars.append([name, value])

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Value) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i][1] = value
                return
        self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n: int, value: Value) -> None:
        self.vars[len(self.vars) - n][1] = value

    def var_value(self, name: str) -> Value:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i][1]
        self.errorf(f"undefined variable: {name}")
        raise AssertionError

    # -- walking --
    def walk(self, dot: Value, node: Node) -> None:
        self.at(node)
        if isinstance(node, ActionNode):
            assert node.pipe is not None
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decls:
                self.print_value(node, val)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        elif isinstance(node, BranchNode):
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, TextNode):
            self.out.append(node.text)
        else:
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, dot: Value, node: BranchNode) -> None:
        mark = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if truth(indirect_interface(val)):
                assert node.list is not None
                self.walk(val if node.keyword == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Value, r: BranchNode) -> None:
        self.at(r)
        outer = self.mark()
        try:
            val, _ = indirect(self.eval_pipeline(dot, r.pipe))
            mark = self.mark()
            assert r.pipe is not None and r.list is not None

            def one(index: Value, elem: Value) -> None:
                if r.pipe.decls:
                    self.set_top_var(1, elem)
                if len(r.pipe.decls) > 1:
                    self.set_top_var(2, index)
                try:
                    self.walk(elem, r.list)
                except _Continue:
                    pass
                finally:
                    self.pop(mark)

            if val.kind == "slice":
                if len(val):
                    for i in range(len(val)):
                        one(Value(INT, i), val.index(i))
                    return
            elif val.kind == "map":
                if len(val):
                    for key, elem in map_items(val):
                        one(key, elem)
                    return
            elif val.valid:
                self.errorf(f"range can't iterate over {gofmt.format_value(val, gofmt.Spec())}")
            if r.else_list is not None:
                self.walk(dot, r.else_list)
        except _Break:
            return
        finally:
            self.pop(outer)

    def walk_template(self, dot: Value, t: TemplateNode) -> None:
        self.at(t)
        root = self.trees.get(t.name)
        if root is None:
            self.errorf(f"template {gofmt.quote(t.name)} not defined")
        if self.depth >= MAX_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_DEPTH})")
        dot = self.eval_pipeline(dot, t.pipe)
        sub = State(t.name, self.parse_name, self.text, self.trees, self.out, self.depth + 1)
        sub.vars = [["$", dot]]
        assert root is not None
        sub.walk(dot, root)

    def print_value(self, node: Node, v: Value) -> None:
        self.at(node)
        if v.kind == "ptr":
            v, _ = indirect(v)
        if not v.valid:
            self.out.append("<no value>")
            return
        if v.kind == "interface" and v.raw is not None:
            v = v.raw
        self.out.append(gofmt.format_value(v, gofmt.Spec()))

    # -- evaluation --
def execute(name: str, text: str, trees: dict[str, ListNode], data: Value) -> str:
    """Run template `name` over `data`. A TemplateError carries the output written before it (`.partial`)."""
    out: list[str] = []
    state = State(name, name, text, trees, out)
    state.vars = [["$", data]]
    try:
        state.walk(data, trees[name])
    except TemplateError as exc:
        exc.partial = "".join(out)       # type: ignore[attr-defined]
        raise
    except RecursionError:
        exc2 = TemplateError(f"template: {name}: exceeded maximum template depth ({MAX_DEPTH})")
        exc2.partial = "".join(out)      # type: ignore[attr-defined]
        raise exc2 from None
    except (_Break, _Continue):
        pass
    return "".join(out)
