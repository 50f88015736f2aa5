"""Options objects: one frozen dataclass per concern, every setting declared once.

A setting is declared once, with :func:`option` (default, one-paragraph documentation,
allowed choices, bounds). From that one declaration come

* the class docstring's ``Parameters`` section (:func:`options` appends it),
* strict validation when the object is built: the type (``M = 50.7``, ``lam = "1e-6"``
  and ``n_toys = true`` are errors, never coerced), the choices and the bounds, with an
  error that names the key (``nplm.M``),
* :func:`from_mapping` for TOML tables (unknown keys are errors naming the key),
* :func:`add_arguments` / :func:`from_arguments` for command-line flags (the help text
  is the field's documentation; the default is printed once),
* :func:`to_dict` for files and configuration hashes.

An options class may *embed* another (:func:`embedded`): its keys then appear directly
in the embedding class's TOML table and command line, and are validated by the embedded
class, so a pipeline section reuses the estimator's options instead of re-declaring
them. This follows Falkon's ``FalkonOptions``.

Example
-------
>>> from contrastx.options import option, options, from_mapping
>>> @options
... class Demo:
...     '''A demonstration.'''
...     n: int = option(10, "How many.", ge=1)
...     kind: str = option("a", "Which kind.", choices=("a", "b"))
>>> from_mapping(Demo, {"n": 3}, where="demo")
Demo(n=3, kind='a')
>>> from_mapping(Demo, {"n": 2.5}, where="demo")
Traceback (most recent call last):
...
contrastx.options.OptionsError: demo.n must be an integer; got 2.5 (float)
"""

from __future__ import annotations

import argparse
import contextvars
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = [
    "OptionsError",
    "add_arguments",
    "embedded",
    "from_arguments",
    "from_mapping",
    "option",
    "option_fields",
    "options",
    "to_dict",
]

T = TypeVar("T")
_MISSING = dataclasses.MISSING


class OptionsError(ValueError, TypeError):
    """An option with a wrong type or value; the message names the key.

    Derives from both :class:`ValueError` and :class:`TypeError`, so callers that catch
    either keep working; contrastx raises it for every invalid setting.
    """


def option(
    default: Any = _MISSING,
    doc: str = "",
    *,
    choices: Iterable[Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    default_factory: Callable[[], Any] | None = None,
    flag: str | None = None,
    cli: bool = True,
    metavar: str | None = None,
) -> Any:
    """Declare one setting of an :func:`options` class.

    Parameters
    ----------
    default : object
        Default value (omit for a required setting). Lists become tuples.
    doc : str
        What the setting means, in a sentence or a paragraph: the docstring entry and the
        command-line help.
    choices : iterable, optional
        The allowed values.
    ge, gt, le, lt : float, optional
        Bounds (for numbers, and for every item of a tuple of numbers).
    default_factory : callable, optional
        For mutable defaults.
    flag : str, optional
        Command-line flag (default ``--`` + the name with ``_`` -> ``-``).
    cli : bool
        Whether :func:`add_arguments` makes a flag for it.
    metavar : str, optional
        Command-line placeholder.
    """
    meta = {
        "doc": " ".join(doc.split()),
        "choices": None if choices is None else tuple(choices),
        "bounds": (ge, gt, le, lt),
        "flag": flag,
        "cli": cli,
        "metavar": metavar,
    }
    if isinstance(default, list):
        default = tuple(default)
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def embedded(cls: type, doc: str = "") -> Any:
    """Embed the options class ``cls``: its keys are accepted flat in the parent's table."""
    return dataclasses.field(
        default_factory=cls, metadata={"doc": doc, "embedded": True, "cli": True}
    )


def _is_embedded(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("embedded"))


def option_fields(cls: Any) -> tuple[dataclasses.Field, ...]:
    """The dataclass fields of an options class (or instance)."""
    return dataclasses.fields(cls)


# --------------------------------------------------------------------------- types
def _hints(cls: type) -> dict[str, Any]:
    cache = cls.__dict__.get("__options_hints__")
    if cache is None:
        cache = typing.get_type_hints(cls)
        cls.__options_hints__ = cache
    return cache


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"table of {_type_name(k)} to {_type_name(v)}"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _kind(value: Any) -> str:
    return type(value).__name__


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against annotation ``tp``; returns it (lists -> tuples)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise OptionsError(f"{where} must be {_type_name(tp)}; got None")
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except OptionsError as err:
                errors.append(err)
        raise (
            errors[0]
            if len(errors) == 1
            else OptionsError(f"{where} must be {_type_name(tp)}; got {value!r} ({_kind(value)})")
        )
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or isinstance(value, bool) != any(
            isinstance(a, bool) for a in allowed
        ):
            raise OptionsError(
                f"{where} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}"
            )
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise OptionsError(
                f"{where} must be a {_type_name(tp)}; got {value!r} ({_kind(value)})"
            )
        item = typing.get_args(tp)[0]
        return tuple(_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise OptionsError(f"{where} must be a {_type_name(tp)}; got {_kind(value)}")
        kt, vt = typing.get_args(tp)
        return {
            _check_type(k, kt, f"{where} key"): _check_type(v, vt, f"{where}.{k}")
            for k, v in value.items()
        }
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise OptionsError(f"{where} must be true or false; got {value!r} ({_kind(value)})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionsError(f"{where} must be an integer; got {value!r} ({_kind(value)})")
        if isinstance(value, float):
            # 1e6 written in a TOML file is a float; exact integers are accepted, nothing
            # is ever rounded.
            if not (math.isfinite(value) and value == int(value)):
                raise OptionsError(f"{where} must be an integer; got {value!r} (float)")
            return int(value)
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionsError(f"{where} must be a number; got {value!r} ({_kind(value)})")
        value = float(value)
        if math.isnan(value):
            raise OptionsError(f"{where} must be a number; got nan")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise OptionsError(f"{where} must be a string; got {value!r} ({_kind(value)})")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):
            raise OptionsError(f"{where} must be a {tp.__name__}; got {_kind(value)}")
        return value
    raise TypeError(f"options: unsupported annotation {tp!r} of {where}")  # programming error


def _check_bounds(value: Any, bounds: tuple, where: str) -> None:
    ge, gt, le, lt = bounds
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if ge is not None and not v >= ge:
            raise OptionsError(f"{where} must be >= {ge}; got {v}")
        if gt is not None and not v > gt:
            raise OptionsError(f"{where} must be > {gt}; got {v}")
        if le is not None and not v <= le:
            raise OptionsError(f"{where} must be <= {le}; got {v}")
        if lt is not None and not v < lt:
            raise OptionsError(f"{where} must be < {lt}; got {v}")


_SECTION_OVERRIDE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "contrastx_options_section", default=None
)


def _section(obj_or_cls: Any) -> str:
    override = _SECTION_OVERRIDE.get()
    if override is not None:
        return override
    return getattr(obj_or_cls, "__options_section__", "") or ""


def _where(obj_or_cls: Any, name: str) -> str:
    section = _section(obj_or_cls)
    return f"{section}.{name}" if section else name


def validate(obj: Any) -> None:
    """Check (and normalise: lists -> tuples, exact floats -> int) every field of ``obj``."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        where = _where(obj, f.name)
        if _is_embedded(f):
            continue
        value = _check_type(value, hints[f.name], where)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise OptionsError(
                f"{where} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}"
            )
        _check_bounds(value, f.metadata.get("bounds", (None,) * 4), where)
        object.__setattr__(obj, f.name, value)


# --------------------------------------------------------------------------- class decorator
def _default_text(f: dataclasses.Field) -> str:
    if f.default is not _MISSING:
        d = f.default
        if isinstance(d, float) and (abs(d) >= 1e5 or (d != 0 and abs(d) < 1e-3)):
            return f"{d:g}"
        if isinstance(d, int) and not isinstance(d, bool) and abs(d) >= 10_000:
            return f"{d:_}"
        return repr(d)
    if f.default_factory is not _MISSING:  # type: ignore[misc]
        return repr(f.default_factory())  # type: ignore[misc]
    return "required"


def _document(cls: type) -> str:
    hints = _hints(cls)
    lines = ["", "Parameters", "----------"]
    for f in dataclasses.fields(cls):
        if _is_embedded(f):
            sub = hints[f.name]
            lines.append(f"{f.name} : {sub.__name__}")
            lines.append(
                f"    {f.metadata.get('doc') or sub.__doc__.splitlines()[0]} Its keys are "
                f"accepted directly in this table (see :class:`{sub.__module__}.{sub.__name__}`)."
            )
            continue
        lines.append(f"{f.name} : {_type_name(hints[f.name])}, default {_default_text(f)}")
        doc = f.metadata.get("doc", "")
        choices = f.metadata.get("choices")
        if choices:
            doc += f" One of {', '.join(repr(c) for c in choices)}."
        if doc:
            lines.append("    " + doc)
    return "\n".join(lines) + "\n"


def options(cls: type[T] | None = None, *, section: str = "") -> Any:
    """Class decorator: a frozen options dataclass, validated and documented from its fields.

    Parameters
    ----------
    section : str
        Name used in error messages (``"nplm"`` -> ``nplm.M must be ...``).

    A class may define ``_check(self)`` for checks that involve several fields; it runs
    after the per-field validation and should raise :class:`OptionsError`.
    """

    def wrap(c: type[T]) -> type[T]:
        user_post = c.__dict__.get("__post_init__")

        def __post_init__(self: Any) -> None:
            validate(self)
            if user_post is not None:
                user_post(self)
            check = getattr(self, "_check", None)
            if check is not None:
                check()

        c.__post_init__ = __post_init__  # type: ignore[attr-defined]
        c.__options_section__ = section  # type: ignore[attr-defined]
        d = dataclasses.dataclass(frozen=True)(c)
        d.__doc__ = (c.__doc__ or c.__name__).rstrip() + "\n" + _document(d)
        return d

    return wrap if cls is None else wrap(cls)


# --------------------------------------------------------------------------- mappings
def from_mapping(cls: type[T], mapping: Mapping[str, Any], *, where: str | None = None) -> T:
    """Build ``cls`` from a (TOML) table; unknown keys and bad values name the key.

    Keys of embedded options classes are accepted directly in ``mapping`` (or as a
    sub-table under the embedded field's name).
    """
    section = _section(cls) if where is None else where
    if not isinstance(mapping, Mapping):
        raise OptionsError(f"[{section}] must be a table; got {_kind(mapping)}")
    hints = _hints(cls)
    own: dict[str, Any] = {}
    embeds = {f.name: hints[f.name] for f in dataclasses.fields(cls) if _is_embedded(f)}
    sub_values: dict[str, dict[str, Any]] = {name: {} for name in embeds}
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in mapping.items():
        if key in embeds:
            if isinstance(value, embeds[key]):
                own[key] = value
                continue
            if not isinstance(value, Mapping):
                raise OptionsError(f"{_join(section, key)} must be a table")
            sub_values[key].update(value)
        elif key in names:
            own[key] = value
        else:
            target = next((n for n, sub in embeds.items() if key in _all_keys(sub)), None)
            if target is None:
                known = sorted(_all_keys(cls))
                raise OptionsError(f"unknown key {_join(section, key)}; known: {', '.join(known)}")
            sub_values[target][key] = value
    for name, values in sub_values.items():
        if values:
            own[name] = from_mapping(embeds[name], values, where=section)
    token = _SECTION_OVERRIDE.set(section)
    try:
        return cls(**own)
    except OptionsError:
        raise
    except (TypeError, ValueError) as err:
        raise OptionsError(f"[{section}] {err}") from err
    finally:
        _SECTION_OVERRIDE.reset(token)


def _join(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _all_keys(cls: type) -> set[str]:
    hints = _hints(cls)
    out: set[str] = set()
    for f in dataclasses.fields(cls):
        out.add(f.name)
        if _is_embedded(f):
            out |= _all_keys(hints[f.name])
    return out


def to_dict(obj: Any, *, flatten: bool = True) -> dict[str, Any]:
    """Plain (TOML/JSON-friendly) form; embedded options are flattened into the parent."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if _is_embedded(f):
            sub = to_dict(value, flatten=flatten)
            if flatten:
                out.update(sub)
            else:
                out[f.name] = sub
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        elif isinstance(value, dict):
            out[f.name] = dict(value)
        else:
            out[f.name] = value
    return out


def replace_flat(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` that also reaches keys of embedded options."""
    hints = _hints(type(obj))
    own = {k: v for k, v in changes.items() if k in {f.name for f in dataclasses.fields(obj)}}
    rest = {k: v for k, v in changes.items() if k not in own}
    for f in dataclasses.fields(obj):
        if not _is_embedded(f) or not rest:
            continue
        keys = _all_keys(hints[f.name])
        mine = {k: rest.pop(k) for k in list(rest) if k in keys}
        if mine:
            own[f.name] = replace_flat(getattr(obj, f.name), **mine)
    if rest:
        raise OptionsError(f"unknown key(s) {', '.join(sorted(rest))} for {type(obj).__name__}")
    return dataclasses.replace(obj, **own)


# --------------------------------------------------------------------------- command line
def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _parser_for(tp: Any) -> tuple[Callable[[str], Any], bool]:
    """(string -> value parser, is_bool) for a field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _parser_for(args[0])
    if origin is typing.Literal:
        args = typing.get_args(tp)
        return type(args[0]), False
    if origin is tuple:
        item_parse, _ = _parser_for(typing.get_args(tp)[0])

        def parse_list(text: str) -> tuple:
            return tuple(item_parse(s.strip()) for s in text.split(",") if s.strip())

        return parse_list, False
    if tp is bool:
        return bool, True
    if tp is int:

        def parse_int(text: str) -> int:
            try:
                return int(text)
            except ValueError:
                value = float(text)  # "1e6"; fractional values are refused below
                if value != int(value):
                    raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
                return int(value)

        return parse_int, False
    if tp in (float, str):
        return tp, False
    raise TypeError(f"options: no command-line form for {tp!r}")


def add_arguments(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    title: str | None = None,
    exclude: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> Any:
    """Add one flag per field of ``cls`` (and of embedded classes) to ``parser``.

    The parsed value is ``None`` unless the flag is given, so :func:`from_arguments` can
    lay flags over a preset; the help text shows the default once (``defaults``
    overrides the shown default, e.g. for a CLI whose own defaults differ).

    Returns the argument group the flags went to.
    """
    group = parser.add_argument_group(title) if title else parser
    skip = set(exclude)
    hints = _hints(cls)
    shown = dict(defaults or {})
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        if _is_embedded(f):
            add_arguments(group, hints[f.name], exclude=skip, defaults=shown)
            continue
        parse, is_bool = _parser_for(hints[f.name])
        doc = f.metadata.get("doc", "")
        default = shown.get(f.name, _MISSING)
        default_text = _default_text(f) if default is _MISSING else repr(default)
        help_text = f"{doc} (default: {default_text})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if is_bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = parse
            choices = f.metadata.get("choices")
            origin = typing.get_origin(hints[f.name])
            if choices is None and origin is typing.Literal:
                choices = typing.get_args(hints[f.name])
            if choices is not None:
                kwargs["choices"] = choices
            if f.metadata.get("metavar"):
                kwargs["metavar"] = f.metadata["metavar"]
        group.add_argument(_flag(f), **kwargs)
    return group


def from_arguments(cls: type[T], namespace: argparse.Namespace, base: T | None = None) -> T:
    """``base`` (default: ``cls()``) with every flag given on the command line applied."""
    obj = cls() if base is None else base
    given = {k: v for k, v in vars(namespace).items() if v is not None and k in _all_keys(cls)}
    try:
        return replace_flat(obj, **given)
    except OptionsError as err:
        raise OptionsError(f"command line: {err}") from None
