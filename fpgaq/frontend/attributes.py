"""Typed access to an ONNX node's attributes: a wrong type is a Problem, not a crash."""
from __future__ import annotations

import math

import onnx
from onnx import AttributeProto, helper

from .values import Problem


class Attributes:
    def __init__(self, onode):
        self._raw = {}
        for a in onode.attribute:
            try:
                value = helper.get_attribute_value(a)
            except ValueError:
                value = None
            if value is None:
                raise Problem(f"attribute '{a.name}' has no value of a known type ({a.type}); "
                              "the file is corrupt, export the model again")
            self._raw[a.name] = (a.type, value)

    def __contains__(self, name: str) -> bool:
        return name in self._raw

    def _get(self, name: str, kinds: tuple, what: str, default):
        if name not in self._raw:
            return default
        kind, value = self._raw[name]
        if kind not in kinds:
            raise Problem(f"attribute '{name}' must be {what}, found {AttributeProto.AttributeType.Name(kind)} "
                          f"{value!r}"[:200])
        return value

    def integer(self, name: str, default: int, allowed: tuple | None = None) -> int:
        v = self._get(name, (AttributeProto.INT,), "an integer", default)
        if allowed is not None and v not in allowed:
            raise Problem(f"attribute '{name}' is {v}; expected one of {', '.join(map(str, allowed))}")
        return int(v)

    def flag(self, name: str, default: bool) -> bool:
        return bool(self.integer(name, int(default), (0, 1)))

    def number(self, name: str, default: float) -> float:
        v = self.optional_number(name)
        return default if v is None else v

    def optional_number(self, name: str) -> float | None:
        v = self._get(name, (AttributeProto.FLOAT, AttributeProto.INT), "a number", None)
        if v is not None and not math.isfinite(v):
            raise Problem(f"attribute '{name}' is {v}; expected a finite number")
        return None if v is None else float(v)

    def text(self, name: str, default: str) -> str:
        v = self._get(name, (AttributeProto.STRING,), "a string", default)
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise Problem(f"attribute '{name}' is not UTF-8 text") from None
        return v

    def tensor(self, name: str) -> onnx.TensorProto | None:
        """A TensorProto attribute (Constant's value), or None."""
        return self._get(name, (AttributeProto.TENSOR,), "a tensor", None)

    def integers(self, name: str, default: list[int] | None) -> list[int] | None:
        v = self._get(name, (AttributeProto.INTS,), "a list of integers", default)
        return None if v is None else [int(i) for i in v]
