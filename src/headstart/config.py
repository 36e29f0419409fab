"""Configuration: the one base of every config dataclass, and the check of the workflow's config.yaml.

Config dataclasses
------------------
Every config class of the code (model, source, training loop) is a dataclass deriving from
:class:`Config`. Building one, directly or with :meth:`Config.from_dict`, checks

1. every value against its field's type annotation: ``int`` (not a bool), ``float`` (an int is
   accepted and stored as a float; finite; numpy scalars are stored as Python numbers), ``bool`` (true or false only), ``str``,
   ``Literal[...]`` (one of the choices), ``X | None``, ``tuple[X, Y]`` / ``tuple[X, ...]`` /
   ``list[X]`` (a list or tuple; stored as a tuple for tuple fields) and unions of these;
2. the field's bounds, declared with :func:`knob` (``steps: int = knob(1000, ge=0)``); bounds
   apply to every number in the value (both ends of a ``(low, high)`` pair), and a subclass that
   only changes a field's default keeps the bounds its base declared;
3. the class's own cross-field checks, its :meth:`Config.check` hook.

Every failure is one :class:`ConfigError` (a ``ValueError``) whose message starts with the dotted
key path: the ``path`` given to :meth:`~Config.from_dict` (e.g. ``up.pretrain.train``) or else the
class name, then the key, e.g. ``up.pretrain.train.clip_norm: expected a number > 0 or null, got -1``.

Workflow config
---------------
:func:`headstart.validate.validate_workflow_config` checks a whole workflow config (config.yaml plus any
``--configfile`` / ``--config`` overrides): the JSON schema (config.schema.yaml, defaults filled in
place as Snakemake's ``validate(config, schema, set_default=True)`` does), then the free-form
sections through the code's config classes, then the references between sections. It raises one
:class:`ConfigError` listing every problem, one per line, each starting with its key path.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import types
import typing
from contextvars import ContextVar
from typing import Any, Literal, Mapping, Union

__all__ = ["ConfigError", "Config", "Bounds", "knob", "merge_overrides"]


# ----------------------------------------------------------------------------------------- errors

class ConfigError(ValueError):
    """A configuration value that is not what the code expects.

    ``str(err)`` is ``"<path>.<key>: <detail>"``; ``path`` is filled in by the config class that
    raised it (the ``path`` given to :meth:`Config.from_dict`, else the class name)."""

    def __init__(self, detail: str, key: str | None = None, path: str | None = None):
        super().__init__(detail)
        self.detail, self.key, self.path = detail, key, path

    @property
    def where(self) -> str:
        return ".".join(p for p in (self.path, self.key) if p)

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}" if self.where else self.detail


def show(value: Any) -> str:
    """A config value as the user wrote it (YAML spelling for null and booleans)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


# ----------------------------------------------------------------------------------------- bounds

@dataclasses.dataclass(frozen=True)
class Bounds:
    """Inclusive (``ge``, ``le``) or exclusive (``gt``, ``lt``) limits of a number."""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def ok(self, x: float) -> bool:
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))

    @property
    def has_lower(self) -> bool:
        return self.ge is not None or self.gt is not None

    def __str__(self) -> str:
        lo = ("[", self.ge) if self.ge is not None else ("(", self.gt) if self.gt is not None else None
        hi = ("]", self.le) if self.le is not None else (")", self.lt) if self.lt is not None else None
        if lo and hi:
            return f"in {lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
        if lo:
            return f"{'>=' if lo[0] == '[' else '>'} {_num(lo[1])}"
        if hi:
            return f"{'<=' if hi[0] == ']' else '<'} {_num(hi[1])}"
        return ""


NO_BOUNDS = Bounds()


def knob(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field with bounds on its numbers: ``lr: float = knob(3e-4, gt=0)``."""
    return dataclasses.field(default=default, metadata={"bounds": Bounds(ge=ge, gt=gt, le=le, lt=lt)})


# ------------------------------------------------------------------------------------------ types

_UNION_TYPES = (Union, types.UnionType)
_PLURAL = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in _UNION_TYPES


def _number_kind(tp) -> bool:
    return tp in (int, float)


def describe(tp, bounds: Bounds = NO_BOUNDS, plural: bool = False) -> str:
    """What a value of annotation ``tp`` (with ``bounds``) must be, in words."""
    b = f" {bounds}" if str(bounds) else ""
    if tp is type(None):
        return "null"
    if tp is Any:
        return "anything"
    if tp is bool:
        return "booleans" if plural else "true or false"
    if tp is int:
        return ("integers" if plural else "an integer") + b
    if tp is float:
        return ("numbers" if plural else "a number") + b
    if tp is str:
        return "strings" if plural else "a string"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        choices = [show(a) for a in args]
        return "one of " + ", ".join(choices)
    if origin in _UNION_TYPES:
        parts = [describe(a, bounds) for a in args if a is not type(None)]
        text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]
        return text + (" or null" if type(None) in args else "")
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(set(args)) == 1:
                return f"a list of {len(args)} {describe(args[0], bounds, plural=True)}"
            return "a list [" + ", ".join(describe(a, bounds) for a in args) + "]"
        item = args[0] if args else Any
        return f"a list of {describe(item, bounds, plural=True)}"
    return getattr(tp, "__name__", str(tp))


def conforms(value: Any, tp, bounds: Bounds = NO_BOUNDS) -> bool:
    """Whether ``value`` is a valid value of annotation ``tp`` within ``bounds``."""
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:   # numpy integers too; never a bool
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and bounds.ok(value)
    if tp is float:
        return (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
                and bounds.ok(value))
    if tp is str:
        return isinstance(value, str)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in _UNION_TYPES:
        return any(conforms(value, a, bounds) for a in args)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(conforms(v, a, bounds) for v, a in zip(value, args))
        item = args[0] if args else Any
        return all(conforms(v, item, bounds) for v in value)
    if isinstance(tp, type):
        return isinstance(value, tp)
    raise TypeError(f"config fields of annotation {tp!r} are not supported")


def coerce(value: Any, tp) -> Any:
    """``value`` (which conforms to ``tp``) in its canonical form: floats for float fields,
    tuples for tuple fields."""
    if tp is float and type(value) is not float and isinstance(value, numbers.Real):
        return float(value)
    if tp is int and type(value) is not int and isinstance(value, numbers.Integral):
        return int(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNION_TYPES:
        for a in args:
            if conforms(value, a):
                return coerce(value, a)
        return value
    if origin is tuple and isinstance(value, (list, tuple)):
        if args and args[-1] is not Ellipsis:
            return tuple(coerce(v, a) for v, a in zip(value, args))
        return tuple(coerce(v, args[0] if args else Any) for v in value)
    if origin is list and isinstance(value, (list, tuple)):
        return [coerce(v, args[0] if args else Any) for v in value]
    return value


# ------------------------------------------------------------------------------------ Config base

# The key path of the config being built by from_dict; read (and cleared, so that configs built
# inside a check name themselves) by Config.__post_init__.
_PATH: ContextVar[str | None] = ContextVar("headstart_config_path", default=None)


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any, Bounds], ...]:
    """(name, annotation, bounds) of every init field of config class ``cls``; bounds are
    inherited from the nearest base that declares them."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        bounds = NO_BOUNDS
        for klass in cls.__mro__:
            own = getattr(klass, "__dataclass_fields__", {}).get(f.name)
            if own is not None and "bounds" in own.metadata:
                bounds = own.metadata["bounds"]
                break
        out.append((f.name, hints[f.name], bounds))
    return tuple(out)


class Config:
    """Base of the config dataclasses: typed, bounded fields, a :meth:`check` hook,
    :meth:`from_dict` / :meth:`to_dict`. Subclasses are ``@dataclass`` classes that declare bounds
    with :func:`knob` and put their cross-field checks (and derived defaults) in :meth:`check`,
    calling ``super().check()``; they do not define ``__post_init__``."""

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None = None, *, path: str | None = None, **overrides: Any):
        """Build from a mapping (e.g. a section of config.yaml) plus ``overrides``. Unknown keys,
        missing required keys, values of the wrong type or out of range raise a
        :class:`ConfigError` whose message starts with ``path`` (default: the class name) and the key."""
        where = path or cls.__name__
        if d is None:
            d = {}
        if not isinstance(d, Mapping):
            raise ConfigError(f"expected a mapping of {cls.__name__} keys, got {show(d)}", path=where)
        merged = {**d, **overrides}
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = [k for k in merged if k not in fields]
        if unknown:
            valid = ", ".join(fields)
            if len(unknown) == 1:
                close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown key for {cls.__name__}{hint}; valid keys: {valid}",
                                  key=str(unknown[0]), path=where)
            raise ConfigError(f"unknown keys {', '.join(map(repr, unknown))} for {cls.__name__}; "
                              f"valid keys: {valid}", path=where)
        missing = [n for n, f in fields.items() if n not in merged
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ConfigError(f"required key of {cls.__name__} is missing", key=missing[0], path=where)
        token = _PATH.set(where)
        try:
            return cls(**merged)
        finally:
            _PATH.reset(token)

    def __post_init__(self) -> None:
        path = _PATH.get()
        token = _PATH.set(None)
        try:
            self._validate()
        except ConfigError as err:
            if err.path is None:
                err.path = path or type(self).__name__
            raise
        finally:
            _PATH.reset(token)

    def _validate(self) -> None:
        fields = _fields(type(self))
        for name, tp, bounds in fields:
            value = getattr(self, name)
            if not conforms(value, tp, bounds):
                raise ConfigError(f"expected {describe(tp, bounds)}, got {show(value)}", key=name)
        for name, tp, _ in fields:
            object.__setattr__(self, name, coerce(getattr(self, name), tp))
        try:
            self.check()
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(str(err)) from None

    # -- hooks and helpers for subclasses -------------------------------------------------------
    def check(self) -> None:
        """Cross-field checks and derived defaults; raise with :meth:`expect` / :class:`ConfigError`.
        Runs after every field has passed its type and bounds check (values already canonical)."""

    def expect(self, ok: bool, key: str, expected: str) -> None:
        """Raise ``<path>.<key>: expected <expected>, got <value>`` unless ``ok``."""
        if not ok:
            raise ConfigError(f"expected {expected}, got {show(getattr(self, key))}", key=key)

    def derive(self, key: str, value: Any) -> None:
        """Set a derived field (works on frozen dataclasses too)."""
        object.__setattr__(self, key, value)

    # -- output ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_bounds(cls) -> dict[str, tuple[Any, Bounds]]:
        """name -> (annotation, bounds) of every field (for documentation and tests)."""
        return {name: (tp, bounds) for name, tp, bounds in _fields(cls)}


# ------------------------------------------------------------------------------- overrides

def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, nested mappings key by key (lists and scalars replace)."""
    out = dict(base)
    for k, v in (overrides or {}).items():
        out[k] = merge_overrides(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out
