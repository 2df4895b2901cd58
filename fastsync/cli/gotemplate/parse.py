"""The parser of Go's text/template (Go 1.19): the same grammar, checks and error messages."""
from __future__ import annotations

from typing import Optional

from fastsync.cli.gotemplate import lex as L
from fastsync.cli.gotemplate.lex import Item
from fastsync.cli.gotemplate.nodes import (ActionNode, BoolNode, BranchNode, BreakNode, ChainNode, CommandNode, ContinueNode, DotNode,
                    ElseNode, EndNode, FieldNode, IdentifierNode, ListNode, Node, NilNode, NumberNode, PipeNode,
                    StringNode, TemplateNode, TextNode, VariableNode)
from fastsync.cli.gotemplate.literals import number_node, unquote
from fastsync.cli.gotemplate.values import TemplateError


class Tree:
    def __init__(self, name: str, funcs: set[str], text: str, tree_set: dict[str, ListNode]) -> None:
        self.name = name
        self.parse_name = name
        self.funcs = funcs
        self.text = text
        self.tree_set = tree_set
        self.token: list[Item] = [Item(L.EOF, 0, "", 1)] * 3
        self.peek_count = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.items: list[Item] = []
        self.ipos = 0
        self.root: Optional[ListNode] = None

    # -- token buffer, as Go's --
    def _lex_next(self) -> Item:
        item = self.items[min(self.ipos, len(self.items) - 1)]
        self.ipos += 1
        return item

    def next(self) -> Item:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self._lex_next()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: Item) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: Item, t1: Item) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> Item:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self._lex_next()
        return self.token[0]

    def next_non_space(self) -> Item:
        while True:
            token = self.next()
            if token.typ != L.SPACE:
                return token

    def peek_non_space(self) -> Item:
        token = self.next_non_space()
        self.backup()
        return token

    def errorf(self, msg: str) -> None:
        raise TemplateError(f"template: {self.parse_name}:{self.token[0].line}: {msg}")

    def expect(self, typ: int, context: str) -> Item:
        token = self.next_non_space()
        if token.typ != typ:
            self.unexpected(token, context)
        return token

    def unexpected(self, token: Item, context: str) -> None:
        if token.typ == L.ERROR:
            extra = f" in {context}" if False else ""
            self.errorf(f"{token}{extra}")
        self.errorf(f"unexpected {token} in {context}")

    # -- grammar --
    def parse(self, items: list[Item]) -> ListNode:
        self.items = items
        self.root = ListNode(self.peek().pos)
        while self.peek().typ != L.EOF:
            if self.peek().typ == L.LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().typ == L.DEFINE:
                    sub = Tree("definition", self.funcs, self.text, self.tree_set)
                    sub.parse_name = self.parse_name
                    sub.items, sub.ipos = self.items, self.ipos
                    sub.parse_definition()
                    self.ipos = sub.ipos
                    continue
                self.backup2(delim)
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                self.errorf(f"unexpected {n}")
            self.root.nodes.append(n)
        self.add(self.name, self.root)
        return self.root

    def add(self, name: str, root: ListNode) -> None:
        old = self.tree_set.get(name)
        if old is None or _is_empty(old):
            self.tree_set[name] = root
        elif not _is_empty(root):
            self.errorf(f"template: multiple definition of template {L.quote(name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        name = self.next_non_space()
        if name.typ not in (L.STRING, L.RAW_STRING):
            self.unexpected(name, context)
        try:
            self.name = unquote(name.val)
        except ValueError:
            self.errorf("invalid syntax")
        self.expect(L.RIGHT_DELIM, context)
        root, end = self.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add(self.name, root)

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != L.EOF:
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")
        raise AssertionError

    def text_or_action(self) -> Node:
        token = self.next_non_space()
        if token.typ == L.TEXT:
            return TextNode(token.pos, token.val)
        if token.typ == L.LEFT_DELIM:
            return self.action()
        self.unexpected(token, "input")
        raise AssertionError

    def action(self) -> Node:
        token = self.next_non_space()
        t = token.typ
        if t == L.BLOCK:
            return self.block_control()
        if t == L.BREAK:
            return self.break_control(token, "break")
        if t == L.CONTINUE:
            return self.break_control(token, "continue")
        if t == L.ELSE:
            return self.else_control()
        if t == L.END:
            return EndNode(self.expect(L.RIGHT_DELIM, "end").pos)
        if t == L.IF:
            return self.control(True, "if")
        if t == L.RANGE:
            return self.control(False, "range")
        if t == L.TEMPLATE:
            return self.template_control()
        if t == L.WITH:
            return self.control(False, "with")
        self.backup()
        token = self.peek()
        return ActionNode(token.pos, token.line, self.pipeline("command", L.RIGHT_DELIM))

    def break_control(self, start: Item, word: str) -> Node:
        token = self.next_non_space()
        if token.typ != L.RIGHT_DELIM:
            self.unexpected(token, "{{" + word + "}}")
        if self.range_depth == 0:
            self.errorf("{{" + word + "}} outside {{range}}")
        return BreakNode(start.pos, start.line) if word == "break" else ContinueNode(start.pos, start.line)

    def pipeline(self, context: str, end: int) -> PipeNode:
        token = self.peek_non_space()
        pipe = PipeNode(token.pos, token.line)
        while True:        # declarations
            v = self.peek_non_space()
            if v.typ != L.VARIABLE:
                break
            self.next()
            after = self.peek()
            nxt = self.peek_non_space()
            if nxt.typ in (L.ASSIGN, L.DECLARE):
                pipe.is_assign = nxt.typ == L.ASSIGN
                self.next_non_space()
                pipe.decls.append(VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
            elif nxt.typ == L.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decls.append(VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decls) < 2:
                    if self.peek_non_space().typ in (L.VARIABLE, L.RIGHT_DELIM, L.RIGHT_PAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            elif after.typ == L.SPACE:
                self.backup3(v, after)
            else:
                self.backup2(v)
            break
        while True:
            token = self.next_non_space()
            if token.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.typ in (L.BOOL, L.CHAR_CONSTANT, L.COMPLEX, L.DOT, L.FIELD, L.IDENTIFIER, L.NUMBER, L.NIL,
                             L.RAW_STRING, L.STRING, L.VARIABLE, L.LEFT_PAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def control(self, allow_else_if: bool, context: str) -> BranchNode:
        nvars = len(self.vars)
        try:
            pipe = self.pipeline(context, L.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list: Optional[ListNode] = None
            if isinstance(nxt, ElseNode):
                if allow_else_if and self.peek().typ == L.IF:
                    self.next()
                    else_list = ListNode(nxt.pos, [self.control(True, "if")])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, EndNode):
                        self.errorf(f"expected end; found {nxt}")
            return BranchNode(pipe.pos, context, pipe.line, pipe, lst, else_list)
        finally:
            del self.vars[nvars:]

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ == L.IF:
            return ElseNode(peek.pos, peek.line)
        token = self.expect(L.RIGHT_DELIM, "else")
        return ElseNode(token.pos, token.line)

    def template_name(self, token: Item, context: str) -> str:
        if token.typ in (L.STRING, L.RAW_STRING):
            try:
                return unquote(token.val)
            except ValueError:
                self.errorf("invalid syntax")
        self.unexpected(token, context)
        raise AssertionError

    def block_control(self) -> Node:
        context = "block clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe = self.pipeline(context, L.RIGHT_DELIM)
        sub = Tree(name, self.funcs, self.text, self.tree_set)
        sub.parse_name = self.parse_name
        sub.items, sub.ipos = self.items, self.ipos
        sub.peek_count, sub.token = self.peek_count, list(self.token)
        root, end = sub.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        sub.add(name, root)
        self.ipos, self.peek_count, self.token = sub.ipos, sub.peek_count, sub.token
        return TemplateNode(token.pos, token.line, name, pipe)

    def template_control(self) -> Node:
        context = "template clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe = None
        if self.next_non_space().typ != L.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, L.RIGHT_DELIM)
        return TemplateNode(token.pos, token.line, name, pipe)

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.typ == L.SPACE:
                continue
            if token.typ in (L.RIGHT_DELIM, L.RIGHT_PAREN):
                self.backup()
            elif token.typ == L.PIPE:
                pass
            elif token.typ == L.ERROR:
                self.errorf(token.val)
            else:
                self.errorf(f"unexpected {token} in operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Optional[Node]:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == L.FIELD:
            chain = ChainNode(self.peek().pos, node)
            while self.peek().typ == L.FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, node.idents + chain.fields)
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, node.idents + chain.fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {L.quote(str(node))}")
            return chain
        return node

    def term(self) -> Optional[Node]:
        token = self.next_non_space()
        t = token.typ
        if t == L.ERROR:
            self.errorf(token.val)
        if t == L.IDENTIFIER:
            if token.val not in self.funcs:
                self.errorf(f"function {L.quote(token.val)} not defined")
            return IdentifierNode(token.pos, token.val)
        if t == L.DOT:
            return DotNode(token.pos)
        if t == L.NIL:
            return NilNode(token.pos)
        if t == L.VARIABLE:
            name = token.val.split(".")[0]
            if name not in self.vars:
                self.errorf(f"undefined variable {L.quote(name)}")
            return VariableNode(token.pos, token.val.split("."))
        if t == L.FIELD:
            return FieldNode(token.pos, [token.val[1:]])
        if t == L.BOOL:
            return BoolNode(token.pos, token.val == "true")
        if t in (L.CHAR_CONSTANT, L.COMPLEX, L.NUMBER):
            return number_node(token, self.errorf)
        if t == L.LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", L.RIGHT_PAREN)
        if t in (L.STRING, L.RAW_STRING):
            try:
                return StringNode(token.pos, token.val, unquote(token.val))
            except (ValueError, IndexError):
                self.errorf("invalid syntax")
        self.backup()
        return None

def _is_empty(n: Node) -> bool:
    if isinstance(n, ListNode):
        return all(_is_empty(x) for x in n.nodes)
    if isinstance(n, TextNode):
        return not n.text.strip()
    return False


def parse(name: str, text: str, funcs: set[str]) -> dict[str, ListNode]:
    """Parse `text` as template `name`; returns every template it defines (name -> root)."""
    trees: dict[str, ListNode] = {}
    Tree(name, funcs, text, trees).parse(L.lex(text))
    return trees
