"""Evaluating pipelines, commands, fields, calls and arguments (Go 1.19's exec.go eval* functions)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence, Union

from fastsync.cli.gotemplate import gofmt
from fastsync.cli.gotemplate.funcs import BUILTINS, Func, Param, fixed_params, param_type_name
from fastsync.cli.gotemplate.nodes import (BoolNode, ChainNode, CommandNode, DotNode, FieldNode, IdentifierNode, Node, NilNode, NumberNode,
                    PipeNode, StringNode, VariableNode)
from fastsync.cli.gotemplate.values import (BOOL, FLOAT64, INT, INTERFACE, INVALID, STRING, GoError, GoType, Value, indirect,
                     indirect_interface, truth, zero)

MISSING: Any = object()          # Go's missingVal: no final (piped) argument
COMPLEX128 = GoType("complex128", "complex128")


class Evaluator(ABC):
    """The eval half of the executor; the State subclass supplies at(), errorf() and the variables."""

    @abstractmethod
    def at(self, node: Node) -> None: ...

    @abstractmethod
    def errorf(self, msg: str) -> None: ...

    @abstractmethod
    def var_value(self, name: str) -> Value: ...

    @abstractmethod
    def set_var(self, name: str, value: Value) -> None: ...

    @abstractmethod
    def push(self, name: str, value: Value) -> None: ...

    def eval_pipeline(self, dot: Value, pipe: Optional[PipeNode]) -> Value:
        if pipe is None:
            return INVALID
        self.at(pipe)
        value = MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value.kind == "interface" and value.type is INTERFACE:
                value = value.raw if value.raw is not None else INVALID
        for var in pipe.decls:
            if pipe.is_assign:
                self.set_var(var.idents[0], value)
            else:
                self.push(var.idents[0], value)
        return value

    def not_a_function(self, args: Optional[Sequence[Node]], final: Any) -> None:
        if (args is not None and len(args) > 1) or final is not MISSING:
            assert args
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Value, cmd: CommandNode, final: Any) -> Value:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return Value(BOOL, first.value)
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return Value(STRING, first.text)
        self.errorf(f"can't evaluate command {gofmt.quote(str(first))}")
        raise AssertionError

    def ideal_constant(self, n: NumberNode) -> Value:
        self.at(n)
        text = n.text.lstrip("+-")
        hex_int = text[:2] in ("0x", "0X") and not any(c in text for c in "pP")
        if n.is_complex:
            return Value(COMPLEX128, n.complex_value)
        if n.is_float and not hex_int and not n.text.startswith("'") and any(c in n.text for c in ".eEpP"):
            return Value(FLOAT64, n.float_value)
        if n.is_int:
            return Value(INT, n.int_value)
        if n.is_uint:
            self.errorf(f"{n.text} overflows int")
        return INVALID

    def eval_field_node(self, dot: Value, field: FieldNode, args: Optional[Sequence[Node]], final: Any) -> Value:
        self.at(field)
        return self.eval_field_chain(dot, dot, field, field.idents, args, final)

    def eval_chain_node(self, dot: Value, chain: ChainNode, args: Optional[Sequence[Node]], final: Any) -> Value:
        self.at(chain)
        if not chain.fields:
            self.errorf("internal error: no fields in evalChainNode")
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        assert chain.node is not None
        pipe = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable_node(self, dot: Value, var: VariableNode, args: Optional[Sequence[Node]], final: Any) -> Value:
        self.at(var)
        value = self.var_value(var.idents[0])
        if len(var.idents) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.idents[1:], args, final)

    def eval_field_chain(self, dot: Value, receiver: Value, node: Node, idents: Sequence[str],
                         args: Optional[Sequence[Node]], final: Any) -> Value:
        for name in idents[:-1]:
            receiver = self.eval_field(dot, name, node, None, MISSING, receiver)
        return self.eval_field(dot, idents[-1], node, args, final, receiver)

    def eval_function(self, dot: Value, node: IdentifierNode, cmd: Node, args: Optional[Sequence[Node]],
                      final: Any) -> Value:
        self.at(node)
        fn = BUILTINS.get(node.ident)
        if fn is None:
            self.errorf(f"{gofmt.quote(node.ident)} is not a defined function")
        assert fn is not None
        return self.eval_call(dot, fn, True, cmd, node.ident, args, final)

    def eval_field(self, dot: Value, name: str, node: Node, args: Optional[Sequence[Node]], final: Any,
                   receiver: Value) -> Value:
        if not receiver.valid:
            return INVALID
        typ = receiver.type
        receiver, isnil = indirect(receiver)
        if receiver.kind == "interface" and isnil:
            self.errorf(f"nil pointer evaluating {typ}.{name}")
        assert receiver.type is not None
        method = receiver.type.method(name) if name[:1].isupper() else None
        if method is not None:
            if method.results > 2 or (method.results == 2 and method.result is None):
                self.errorf(f"can't call method/function {gofmt.quote(name)} with {method.results} results")
            recv = receiver

            def bound(*argv: Value, _m=method, _r=recv) -> Value:
                if _r.raw is None and _r.kind == "ptr":
                    raise GoError("runtime error: invalid memory address or nil pointer dereference")
                raw = _m.fn(_r.raw, *[a.raw for a in argv])
                return raw if isinstance(raw, Value) else Value(_m.result, raw)
            return self.eval_call(dot, Func(method.params, False, bound), False, node, name, args, final)
        has_args = (args is not None and len(args) > 1) or final is not MISSING
        if receiver.kind == "struct" and receiver.type.field_type(name) is not None:
            if has_args:
                self.errorf(f"{name} has arguments but cannot be invoked as function")
            return receiver.field(name)
        if receiver.kind == "map" and receiver.type.key is not None and receiver.type.key.kind == "string":
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            raw = receiver.raw or {}
            assert receiver.type.elem is not None
            return Value(receiver.type.elem, raw[name]) if name in raw else INVALID
        if receiver.kind == "ptr" and isnil:
            self.errorf(f"nil pointer evaluating {typ}.{name}")
        self.errorf(f"can't evaluate field {name} in type {typ}")
        raise AssertionError

    def eval_call(self, dot: Value, fn: Func, builtin: bool, node: Node, name: str,
                  args: Optional[Sequence[Node]], final: Any) -> Value:
        argn = list(args[1:]) if args is not None else []
        num_in = len(argn) + (final is not MISSING)
        num_fixed = fixed_params(fn)
        if fn.variadic:
            if num_in < num_fixed:
                self.errorf(f"wrong number of args for {name}: want at least {num_fixed} got {len(argn)}")
        elif num_in != len(fn.params):
            self.errorf(f"wrong number of args for {name}: want {len(fn.params)} got {num_in}")
        if builtin and name in ("and", "or"):
            v = INVALID
            for a in argn:
                v = self.eval_arg(dot, "value", a)
                if truth(v) == (name == "or"):
                    return v
            return final if final is not MISSING else v
        argv: list[Value] = []
        for i, a in enumerate(argn):
            p = fn.params[i] if i < num_fixed else fn.params[-1]
            argv.append(self.eval_arg(dot, p, a))
        if final is not MISSING:
            p = fn.params[-1]
            if fn.variadic and num_in - 1 < num_fixed:
                p = fn.params[num_in - 1]
            argv.append(self.validate_type(final, p))
        try:
            return fn.fn(*argv)
        except GoError as exc:
            self.at(node)
            self.errorf(f"error calling {name}: {exc}")
            raise AssertionError

    def validate_type(self, value: Value, typ: Union[Param, None]) -> Value:
        if typ is None or typ == "value":
            return value
        if typ == "any":
            value = indirect_interface(value)
            return value if value.valid else Value(INTERFACE, None)
        assert isinstance(typ, GoType)
        if not value.valid:
            if typ.nillable:
                return zero(typ)
            self.errorf(f"invalid value; expected {typ}")
        assert value.type is not None
        if value.type is typ or value.type.name == typ.name:
            return value
        if value.kind == "interface" and value.raw is not None and value.raw.type.name == typ.name:
            return value.raw
        if value.kind == "ptr" and value.raw is not None and value.type.elem.name == typ.name:
            return value.elem()
        self.errorf(f"wrong type for value; expected {typ}; got {value.type}")
        raise AssertionError

    def eval_arg(self, dot: Value, typ: Union[Param, None], n: Node) -> Value:
        self.at(n)
        if isinstance(n, DotNode):
            return self.validate_type(dot, typ)
        if isinstance(n, NilNode):
            if typ == "any" or (isinstance(typ, GoType) and typ.nillable):
                return Value(INTERFACE, None) if typ == "any" else zero(typ)
            self.errorf(f"cannot assign nil to {param_type_name(typ)}")
        if isinstance(n, FieldNode):
            return self.validate_type(self.eval_field_node(dot, n, [n], MISSING), typ)
        if isinstance(n, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, n, None, MISSING), typ)
        if isinstance(n, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n), typ)
        if isinstance(n, IdentifierNode):
            return self.validate_type(self.eval_function(dot, n, n, None, MISSING), typ)
        if isinstance(n, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, n, None, MISSING), typ)
        if typ in ("value", "any", None):
            return self.eval_empty_interface(dot, n)
        assert isinstance(typ, GoType)
        k = typ.kind
        if k == "bool":
            if isinstance(n, BoolNode):
                return Value(typ, n.value)
            self.errorf(f"expected bool; found {n}")
        if k in ("int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64"):
            if isinstance(n, NumberNode) and n.is_int:
                return Value(typ, n.int_value)
            self.errorf(f"expected integer; found {n}")
        if k in ("float32", "float64"):
            if isinstance(n, NumberNode) and n.is_float:
                return Value(typ, n.float_value)
            self.errorf(f"expected float; found {n}")
        if k == "string":
            if isinstance(n, StringNode):
                return Value(typ, n.text)
            self.errorf(f"expected string; found {n}")
        self.errorf(f"can't handle {n} for arg of type {typ}")
        raise AssertionError

    def eval_empty_interface(self, dot: Value, n: Node) -> Value:
        self.at(n)
        if isinstance(n, BoolNode):
            return Value(BOOL, n.value)
        if isinstance(n, NumberNode):
            return self.ideal_constant(n)
        if isinstance(n, StringNode):
            return Value(STRING, n.text)
        self.errorf(f"can't handle assignment of {n} to empty interface argument")
        raise AssertionError
