"""Typed checks for parsed JSON, composed into a schema (:mod:`edge_infer.manifest_schema`).

Each check is a callable ``check(value, where)`` that returns nothing or raises
:class:`FieldError` naming the field by its dotted path (``artifacts.onnx-int8.file``) and saying
what was expected and what was found, in one line. Numbers are never booleans and always finite;
strings are never blank. Nothing here recurses on the document itself except along the schema,
so a hostile document cannot exhaust the stack (:func:`check_depth` walks it iteratively).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class FieldError(ValueError):
    """A manifest field breaks the schema; ``field`` is its dotted path (``artifacts.onnx-int8.file``)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def describe(value: Any) -> str:
    """A short, one-line rendering of a JSON value for an error message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(where: str, expected: str, value: Any) -> None:
    raise FieldError(where, f"expected {expected}, got {describe(value)}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Str:
    pattern: str | None = None
    what: str = "a non-empty string"

    def __call__(self, v: Any, where: str) -> None:
        if not isinstance(v, str) or not v.strip() or (self.pattern and not re.fullmatch(self.pattern, v)):
            _fail(where, self.what, v)


@dataclass(frozen=True)
class Text:
    """Free text for people (may be empty)."""

    def __call__(self, v: Any, where: str) -> None:
        if not isinstance(v, str):
            _fail(where, "a string", v)


@dataclass(frozen=True)
class Int:
    lo: int
    hi: int

    def __call__(self, v: Any, where: str) -> None:
        if not isinstance(v, int) or isinstance(v, bool) or not self.lo <= v <= self.hi:
            _fail(where, f"a whole number from {self.lo} to {self.hi}", v)


@dataclass(frozen=True)
class Num:
    """A finite number in a range; ``open_lo``/``open_hi`` exclude the bound."""

    lo: float = -math.inf
    hi: float = math.inf
    open_lo: bool = False
    open_hi: bool = False

    def __call__(self, v: Any, where: str) -> None:
        ok = _is_number(v) and math.isfinite(v)
        ok = ok and (v > self.lo if self.open_lo else v >= self.lo) and (v < self.hi if self.open_hi else v <= self.hi)
        if not ok:
            span = "" if (self.lo, self.hi) == (-math.inf, math.inf) else " " + self._span()
            _fail(where, f"a finite number{span}", v)

    def _span(self) -> str:
        if self.open_lo and self.open_hi:
            return f"strictly between {self.lo:g} and {self.hi:g}"
        if self.hi == math.inf:
            return f"{'above' if self.open_lo else 'at least'} {self.lo:g}"
        return f"from {self.lo:g} to {self.hi:g}"


@dataclass(frozen=True)
class OneOf:
    values: tuple

    def __call__(self, v: Any, where: str) -> None:
        if not isinstance(v, (str, int)) or isinstance(v, bool) or v not in self.values:
            _fail(where, f"one of {', '.join(map(str, self.values))}", v)


@dataclass(frozen=True)
class Arr:
    item: Callable
    min_len: int = 0
    max_len: int = 10_000
    unique: bool = False
    what: str = "a list"

    def __call__(self, v: Any, where: str) -> None:
        if not isinstance(v, list) or not self.min_len <= len(v) <= self.max_len:
            n = f"{self.min_len}" if self.min_len == self.max_len else f"{self.min_len} to {self.max_len}"
            _fail(where, f"{self.what} of {n} items", v)
        for i, item in enumerate(v):
            self.item(item, f"{where}[{i}]")
        if self.unique:
            seen = set()
            for i, item in enumerate(v):
                if item in seen:
                    raise FieldError(f"{where}[{i}]", f"{describe(item)} is listed twice")
                seen.add(item)


@dataclass(frozen=True)
class Obj:
    required: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)

    def __call__(self, v: Any, where: str) -> None:
        if not isinstance(v, dict):
            _fail(where, "an object", v)
        for key, check in self.required.items():
            if key not in v:
                raise FieldError(_join(where, key), "missing")
            check(v[key], _join(where, key))
        for key, check in self.optional.items():
            if key in v:
                check(v[key], _join(where, key))


@dataclass(frozen=True)
class MapOf:
    """An object whose keys are names (``keys``) and whose values all follow ``value``."""

    keys: Callable
    value: Callable
    min_len: int = 0

    def __call__(self, v: Any, where: str) -> None:
        if not isinstance(v, dict) or len(v) < self.min_len:
            _fail(where, "an object" + (f" of at least {self.min_len} entries" if self.min_len else ""), v)
        for key, item in v.items():
            self.keys(key, _join(where, key))
            self.value(item, _join(where, key))


@dataclass(frozen=True)
class Nullable:
    inner: Callable

    def __call__(self, v: Any, where: str) -> None:
        if v is not None:
            self.inner(v, where)


def AnyObject(v: Any, where: str) -> None:
    """Descriptive content: any object (only its depth is limited, :func:`check_depth`)."""
    if not isinstance(v, dict):
        _fail(where, "an object", v)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def check_depth(data: Any, limit: int) -> None:
    """Refuse nesting deeper than ``limit`` (iteratively: a deep document cannot exhaust the stack)."""
    stack = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > limit:
            raise FieldError(where or "(top level)", f"nested more than {limit} levels deep")
        if isinstance(value, dict):
            stack.extend((v, _join(where, k), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
