"""Options objects: one frozen dataclass per concern, every setting declared once.

A setting is declared once, with :func:`option` (default, one-paragraph documentation,
allowed choices, bounds). From that one declaration come

* the class docstring's ``Parameters`` section (:func:`options` appends it),
* strict validation when the object is built: the type (``M = 50.7``, ``lam = "1e-6"``
  and ``n_toys = true`` are errors, never coerced), the choices and the bounds, with an
  error that names the key (``nplm.M``),
* :func:`from_mapping` for TOML tables (unknown keys are errors naming the key),
* :func:`add_arguments` / :func:`from_arguments` for command-line flags (the help text
  is the field's documentation; the default is printed once, also with
  :class:`HelpFormatter` for the hand-written flags of the same parser),
* :func:`to_dict` for files and configuration hashes.

An options class may *embed* another (:func:`embedded`): the embedded class's keys then
appear directly in the embedding class's TOML table, command line, constructor
(``ToyOptions(n_ref=4000, n_bkg=200, M=50)``) and attributes (``cfg.M``), and are
validated by the embedded class, so a pipeline section reuses the estimator's options
instead of re-declaring them. An embedding may give the embedded class other defaults
and leave some of its keys out. This follows Falkon's ``FalkonOptions``.

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
import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = [
    "HelpFormatter",
    "OptionsError",
    "add_arguments",
    "apply_overrides",
    "embedded",
    "from_arguments",
    "from_mapping",
    "key_name",
    "merge_tables",
    "option",
    "option_doc",
    "option_fields",
    "options",
    "parse_override",
    "read_toml",
    "replace_flat",
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
    finite: bool = True,
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
    finite : bool
        Refuse ``inf`` and ``-inf`` for a number (NaN is always refused).
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
        "finite": finite,
        "flag": flag,
        "cli": cli,
        "metavar": metavar,
    }
    if isinstance(default, list):
        default = tuple(default)
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def embedded(
    cls: type,
    doc: str = "",
    *,
    exclude: Iterable[str] | Mapping[str, str] = (),
    **defaults: Any,
) -> Any:
    """Embed the options class ``cls``: its keys are accepted flat in the parent.

    Parameters
    ----------
    cls : type
        An :func:`options` class.
    doc : str
        What the embedded options are for here (default: the first line of ``cls``'s
        docstring).
    exclude : iterable of str, or mapping of key to reason
        Keys of ``cls`` (or of classes it embeds) that are *not* settable through the
        parent: the parent's code sets them (from ``defaults`` or the class defaults).
        They are left out of the parent's table, command line, attributes and
        :func:`to_dict`; setting one is an error that gives the reason (e.g.
        ``{"seed": "set from run.seed"}``).
    **defaults
        Defaults of ``cls``'s keys that differ in this parent (``M=300``), also for
        required keys of ``cls``.
    """
    reasons = dict(exclude) if isinstance(exclude, Mapping) else {}
    exclude = tuple(exclude)
    known = _all_keys(cls)
    unknown = sorted((set(exclude) | set(defaults)) - known)
    if unknown:
        raise TypeError(f"embedded({cls.__name__}): unknown key(s) {', '.join(unknown)}")
    meta = {
        "doc": " ".join(doc.split()),
        "embedded": True,
        "cli": True,
        "exclude": exclude,
        "exclude_reasons": reasons,
        "defaults": dict(defaults),
    }
    if _required_keys(cls) - set(defaults):
        # No default instance: the parent must be given these keys (checked by its __init__).
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(default_factory=lambda: cls(**defaults), metadata=meta)


def _is_embedded(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("embedded"))


def option_fields(cls: Any) -> tuple[dataclasses.Field, ...]:
    """The dataclass fields of an options class (or instance)."""
    return dataclasses.fields(cls)


def option_doc(cls: Any, key: str) -> str:
    """The documentation of ``key`` (a flat key: embedded classes are searched too)."""
    _, f = _find_field(cls if isinstance(cls, type) else type(cls), key)
    return f.metadata.get("doc", "")


def _find_field(cls: type, key: str) -> tuple[type, dataclasses.Field]:
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if _is_embedded(f):
            if key in _all_keys(hints[f.name]):
                return _find_field(hints[f.name], key)
        elif f.name == key:
            return cls, f
    raise KeyError(f"{cls.__name__} has no option {key!r}")


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
        # Python and NumPy integers; never bool.
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise OptionsError(f"{where} must be an integer; got {value!r} ({_kind(value)})")
        if not isinstance(value, numbers.Integral):
            # 1e6 written in a TOML file is a float; exact integers are accepted, nothing
            # is ever rounded.
            value = float(value)
            if not (math.isfinite(value) and value == int(value)):
                raise OptionsError(f"{where} must be an integer; got {value!r} (float)")
        return int(value)
    if tp is float:
        # Python and NumPy numbers; never bool.
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
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


def _check_bounds(value: Any, bounds: tuple, finite: bool, where: str) -> None:
    ge, gt, le, lt = bounds
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if finite and isinstance(v, float) and not math.isfinite(v):
            raise OptionsError(f"{where} must be a finite number; got {v}")
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
_COMMAND_LINE = "\0command line"


def _section(obj_or_cls: Any) -> str:
    override = _SECTION_OVERRIDE.get()
    if override is not None:
        return override
    return getattr(obj_or_cls, "__options_section__", "") or ""


def key_name(obj_or_cls: Any, name: str) -> str:
    """How errors name the key ``name`` of ``obj_or_cls``: ``nplm.M``, ``embeddings[0].kind``,
    or the flag (``--M``) while :func:`from_arguments` builds the object.

    For the messages of cross-field checks (``_check``) that should name the key the
    same way as the per-field checks do.
    """
    section = _section(obj_or_cls)
    if section == _COMMAND_LINE:
        try:
            _, f = _find_field(
                obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls), name
            )
        except KeyError:
            return "--" + name.replace("_", "-")
        return _flag(f)
    return f"{section}.{name}" if section else name


def validate(obj: Any) -> None:
    """Check (and normalise: lists -> tuples, exact floats -> int) every field of ``obj``."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        where = key_name(obj, f.name)
        if _is_embedded(f):
            sub = hints[f.name]
            if not isinstance(value, sub):
                raise OptionsError(f"{where} must be a {sub.__name__}; got {_kind(value)}")
            continue
        value = _check_type(value, hints[f.name], where)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise OptionsError(
                f"{where} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}"
            )
        _check_bounds(
            value, f.metadata.get("bounds", (None,) * 4), f.metadata.get("finite", True), where
        )
        object.__setattr__(obj, f.name, value)


# --------------------------------------------------------------------------- flat keys
def _routes(cls: type) -> dict[str, str | None]:
    """Every key settable through ``cls``: own fields -> None, embedded keys -> the field
    of ``cls`` that embeds them (excluded keys left out)."""
    cache = cls.__dict__.get("__options_routes__")
    if cache is not None:
        return cache
    hints = _hints(cls)
    out: dict[str, str | None] = {}
    for f in dataclasses.fields(cls):
        if not _is_embedded(f):
            out[f.name] = None
    for f in dataclasses.fields(cls):
        if not _is_embedded(f):
            continue
        excluded = set(f.metadata.get("exclude", ()))
        for key in _routes(hints[f.name]):
            if key in excluded:
                continue
            if key in out:
                raise TypeError(
                    f"options {cls.__name__}: key {key!r} of embedded {f.name} clashes with "
                    "another key (exclude one of them)"
                )
            out[key] = f.name
    cls.__options_routes__ = out
    return out


def _unknown_key(cls: type, key: str, shown: str) -> OptionsError:
    """The error for a key ``cls`` does not take (``shown``: how to name it)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if _is_embedded(f) and key in f.metadata.get("exclude", ()):
            reason = f.metadata.get("exclude_reasons", {}).get(key)
            return OptionsError(f"{shown} cannot be set here" + (f": {reason}" if reason else ""))
        if _is_embedded(f) and key in _routes(hints[f.name]):
            # excluded deeper down
            return _unknown_key(hints[f.name], key, shown)
    known = ", ".join(sorted(_routes(cls)))
    return OptionsError(f"unknown key {shown}; known: {known}")


def _all_keys(cls: type) -> set[str]:
    """Every flat key of ``cls`` (own and embedded, without the excluded ones)."""
    return set(_routes(cls))


def _required_keys(cls: type) -> set[str]:
    """Flat keys without a default (own fields, and embedded classes without one)."""
    hints = _hints(cls)
    out: set[str] = set()
    for f in dataclasses.fields(cls):
        if _is_embedded(f):
            if f.default is None:
                sub = hints[f.name]
                out |= _required_keys(sub) - set(f.metadata.get("defaults", {}))
        elif f.default is _MISSING and f.default_factory is _MISSING:  # type: ignore[misc]
            out.add(f.name)
    return out


def _flat_init(cls: type, orig_init: Callable[..., None]) -> Callable[..., None]:
    """``__init__`` that takes the keys of embedded classes flat and names missing keys."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    embeds = {f.name: f for f in fields if _is_embedded(f)}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__} takes at most {len(names)} positional arguments")
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"{cls.__name__} got two values for {name!r}")
            kwargs[name] = value
        routes = _routes(cls)
        hints = _hints(cls)
        flat: dict[str, dict[str, Any]] = {name: {} for name in embeds}
        for key in list(kwargs):
            if key in embeds:
                continue
            if key not in routes:
                raise _unknown_key(cls, key, key_name(cls, key))
            target = routes[key]
            if target is not None:
                flat[target][key] = kwargs.pop(key)
        missing = []
        # Embedded objects built here name their keys with this class's section.
        token = _SECTION_OVERRIDE.set(_section(cls)) if embeds else None
        try:
            _build_embedded(cls, embeds, hints, kwargs, flat, missing)
        finally:
            if token is not None:
                _SECTION_OVERRIDE.reset(token)
        missing += [
            f.name
            for f in fields
            if not _is_embedded(f)
            and f.name not in kwargs
            and f.default is _MISSING
            and f.default_factory is _MISSING  # type: ignore[misc]
        ]
        if missing:
            keys = ", ".join(key_name(cls, k) for k in missing)
            raise OptionsError(f"{keys} {'is' if len(missing) == 1 else 'are'} required")
        orig_init(self, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = orig_init.__doc__
    __init__.__signature__ = inspect.signature(orig_init)  # type: ignore[attr-defined]
    return __init__


def _build_embedded(
    cls: type,
    embeds: dict[str, dataclasses.Field],
    hints: dict[str, Any],
    kwargs: dict[str, Any],
    flat: dict[str, dict[str, Any]],
    missing: list[str],
) -> None:
    """Build (or update) each embedded object in ``kwargs`` from its flat keys."""
    for name, f in embeds.items():
        if name in kwargs and kwargs[name] is None:
            del kwargs[name]  # None: the embedding's default
        given, values = kwargs.get(name), flat[name]
        sub = hints[name]
        if given is None:
            base = dict(f.metadata.get("defaults", {}))
            if values or f.default is None:
                lack = sorted(_required_keys(sub) - set(base) - set(values))
                if lack:
                    missing += lack
                    continue
                kwargs[name] = sub(**{**base, **values})
        elif values:
            if not isinstance(given, sub):
                raise OptionsError(
                    f"{key_name(cls, name)} must be a {sub.__name__}; got {_kind(given)}"
                )
            kwargs[name] = dataclasses.replace(given, **values)


def _flat_getattr(cls: type) -> Callable[[Any, str], Any]:
    def __getattr__(self: Any, name: str) -> Any:
        if not name.startswith("_"):
            target = _routes(type(self)).get(name)
            if target is not None:
                return getattr(object.__getattribute__(self, target), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    return __getattr__


# --------------------------------------------------------------------------- class decorator
def _format_value(d: Any) -> str:
    if isinstance(d, float) and (abs(d) >= 1e5 or (d != 0 and abs(d) < 1e-3)):
        return f"{d:g}"
    if isinstance(d, int) and not isinstance(d, bool) and abs(d) >= 10_000:
        return f"{d:_}"
    return repr(d)


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not _MISSING:
        return _format_value(f.default)
    if f.default_factory is not _MISSING:  # type: ignore[misc]
        return repr(f.default_factory())  # type: ignore[misc]
    return "required"


def _document(cls: type) -> str:
    hints = _hints(cls)
    lines = ["", "Parameters", "----------"]
    for f in dataclasses.fields(cls):
        if _is_embedded(f):
            sub = hints[f.name]
            text = f.metadata.get("doc") or (sub.__doc__ or sub.__name__).splitlines()[0]
            text += (
                " Its keys are accepted directly here (constructor, table, command line, "
                f"attributes; see :class:`{sub.__module__}.{sub.__name__}`)."
            )
            defaults = f.metadata.get("defaults") or {}
            if defaults:
                text += (
                    " Defaults here: "
                    + ", ".join(f"{k} = {_format_value(v)}" for k, v in defaults.items())
                    + "."
                )
            if f.metadata.get("exclude"):
                text += " Not set here: " + ", ".join(f.metadata["exclude"]) + "."
            lines.append(f"{f.name} : {sub.__name__}")
            lines.append("    " + text)
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
    after the per-field validation and should raise :class:`OptionsError` (naming keys
    with :func:`key_name`). Missing required keys and unknown keys are
    :class:`OptionsError` too. A class that embeds others (:func:`embedded`) takes their
    keys in its constructor and answers them as attributes.
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
        # Keyword-only underneath (required keys may follow defaulted ones); the flat
        # __init__ below still takes positional values in field order.
        d = dataclasses.dataclass(frozen=True, kw_only=True)(c)
        routes = _routes(d)  # also checks that flat keys do not clash
        d.__init__ = _flat_init(d, d.__init__)  # type: ignore[misc]
        if any(r is not None for r in routes.values()):
            d.__getattr__ = _flat_getattr(d)  # type: ignore[attr-defined]
        d.__doc__ = inspect.cleandoc(c.__doc__ or c.__name__) + "\n" + _document(d)
        return d

    return wrap if cls is None else wrap(cls)


# --------------------------------------------------------------------------- mappings
def from_mapping(cls: type[T], mapping: Mapping[str, Any], *, where: str | None = None) -> T:
    """Build ``cls`` from a (TOML) table; unknown keys and bad values name the key.

    Keys of embedded options classes are accepted directly in ``mapping`` (or in a
    sub-table under the embedded field's name).
    """
    section = _section(cls) if where is None else where
    if not isinstance(mapping, Mapping):
        raise OptionsError(f"[{section}] must be a table; got {_kind(mapping)}")
    hints = _hints(cls)
    routes = _routes(cls)
    embeds = {f.name: hints[f.name] for f in dataclasses.fields(cls) if _is_embedded(f)}
    kwargs: dict[str, Any] = {}
    for key, value in mapping.items():
        if key in embeds and not isinstance(value, embeds[key]):
            if not isinstance(value, Mapping):
                raise OptionsError(f"{_join(section, key)} must be a table")
            for k, v in value.items():
                if routes.get(k) != key:
                    raise OptionsError(
                        f"unknown key {_join(section, key)}.{k}; known: "
                        + ", ".join(sorted(k2 for k2, r in routes.items() if r == key))
                    )
                kwargs[k] = v
        elif key in embeds or key in routes:
            kwargs[key] = value
        else:
            raise _unknown_key(cls, key, _join(section, key))
    token = _SECTION_OVERRIDE.set(section)
    try:
        return cls(**kwargs)
    except OptionsError:
        raise
    except (TypeError, ValueError) as err:
        raise OptionsError(f"[{section}] {err}") from err
    finally:
        _SECTION_OVERRIDE.reset(token)


def _join(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def to_dict(obj: Any, *, flatten: bool = True) -> dict[str, Any]:
    """Plain (TOML/JSON-friendly) form; embedded options are flattened into the parent.

    Keys an embedding excludes are left out (they are not settable through the parent),
    so ``from_mapping(cls, to_dict(obj)) == obj`` whenever they hold their defaults.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if _is_embedded(f):
            sub = to_dict(value, flatten=flatten)
            for k in f.metadata.get("exclude", ()):
                _drop(sub, k)
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


def _drop(d: dict[str, Any], key: str) -> None:
    d.pop(key, None)
    for v in d.values():
        if isinstance(v, dict):
            _drop(v, key)


def replace_flat(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` that also reaches keys of embedded options."""
    routes = _routes(type(obj))
    unknown = sorted(k for k in changes if k not in routes and k not in _embed_names(obj))
    if unknown:
        raise OptionsError(f"unknown key(s) {', '.join(unknown)} for {type(obj).__name__}")
    return dataclasses.replace(obj, **changes)


def _embed_names(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj) if _is_embedded(f)}


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
                try:
                    value = float(text)  # "1e6"; fractional values are refused below
                except ValueError:
                    raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
                if not (math.isfinite(value) and value == int(value)):
                    raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
                return int(value)

        parse_int.__name__ = "int"
        return parse_int, False
    if tp in (float, str):
        return tp, False
    raise TypeError(f"options: no command-line form for {tp!r}")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help formatter that prints every default once.

    Flags made by :func:`add_arguments` state their default in their help already (their
    parsed default is ``None``, so options can be laid over a preset); other flags get
    ``(default: X)`` appended unless their help mentions the default, or the default is
    ``None`` or ``False``.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "(default:" in text
            or "%(default)" in text
            or action.default is None
            or action.default is False
            or action.default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return text + " (default: %(default)s)"


def add_arguments(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    title: str | None = None,
    exclude: Iterable[str] = (),
    only: Iterable[str] | None = None,
    embedded: bool = True,
    defaults: Mapping[str, Any] | None = None,
    default_text: Mapping[str, str] | None = None,
) -> Any:
    """Add one flag per field of ``cls`` (and of embedded classes) to ``parser``.

    The parsed value is ``None`` unless the flag is given, so :func:`from_arguments` can
    lay flags over a preset; the help text is the field's documentation followed by the
    default, once (use :class:`HelpFormatter` for the parser, not argparse's
    ``ArgumentDefaultsHelpFormatter``, which would add ``(default: None)``).

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    cls : type
        An :func:`options` class.
    title : str, optional
        Put the flags in a new argument group of this title.
    exclude : iterable of str
        Keys without a flag (the caller handles them, e.g. a flag in other units).
    only : iterable of str, optional
        Flags for these keys only.
    embedded : bool
        Also the keys of embedded classes (with the embedding's defaults).
    defaults : mapping, optional
        Defaults to show instead of the declared ones (a command line whose own defaults
        differ, e.g. a preset).
    default_text : mapping of str to str, optional
        Free text to show as the default of a key.

    Returns
    -------
    The argument group the flags went to.
    """
    group = parser.add_argument_group(title) if title else parser
    _add_flags(
        group,
        cls,
        skip=set(exclude),
        only=None if only is None else set(only),
        recurse=embedded,
        shown={k: _format_value(v) for k, v in (defaults or {}).items()} | dict(default_text or {}),
        inherited={},
    )
    return group


def _add_flags(
    group: Any,
    cls: type,
    *,
    skip: set[str],
    only: set[str] | None,
    recurse: bool,
    shown: dict[str, str],
    inherited: dict[str, str],
) -> None:
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if _is_embedded(f):
            if not recurse:
                continue
            sub_defaults = {
                k: _format_value(v) for k, v in (f.metadata.get("defaults") or {}).items()
            }
            _add_flags(
                group,
                hints[f.name],
                skip=skip | set(f.metadata.get("exclude", ())),
                only=only,
                recurse=True,
                shown=shown,
                inherited={**sub_defaults, **inherited},
            )
            continue
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        if only is not None and f.name not in only:
            continue
        parse, is_bool = _parser_for(hints[f.name])
        doc = f.metadata.get("doc", "")
        text = shown.get(f.name, inherited.get(f.name))
        if text is None:
            text = "unset" if f.default is None else _default_text(f)
        help_text = f"{doc} (default: {text})".replace("%", "%%")
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


def from_arguments(cls: type[T], namespace: argparse.Namespace, base: T | None = None) -> T:
    """``base`` (default: ``cls()``) with every flag given on the command line applied.

    Only flags that were given (not ``None``) change ``base``; errors name the flag
    (``--M must be >= 1; got 0``).
    """
    routes = _routes(cls)
    given = {k: v for k, v in vars(namespace).items() if v is not None and k in routes}
    token = _SECTION_OVERRIDE.set(_COMMAND_LINE)
    try:
        obj = cls() if base is None else base
        return dataclasses.replace(obj, **given) if given else obj
    except OptionsError as err:
        raise OptionsError(f"command line: {err}") from None
    finally:
        _SECTION_OVERRIDE.reset(token)


# ----------------------------------------------------------------------- TOML layering
def _tomllib() -> Any:
    try:  # Python >= 3.11
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib


def merge_tables(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``, tables merged key by key (deep copies; neither changes)."""
    import copy

    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, Mapping):
            out[k] = merge_tables(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"section.key=value"`` -> (``["section", "key"]``, value parsed as a TOML value).

    A value that is not valid TOML is taken as a string (``run.out_dir=out``).
    """
    tomllib = _tomllib()

    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    path, raw = text.split("=", 1)
    keys = [k.strip() for k in path.strip().split(".") if k.strip()]
    if not keys:
        raise ValueError(f"override {text!r} has no key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return keys, value


def apply_overrides(tables: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set every ``"section.key=value"`` of ``overrides`` in ``tables`` (in place; returned)."""
    for item in overrides:
        keys, value = parse_override(item)
        node = tables
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {k} is not a table")
        node[keys[-1]] = value
    return tables


def read_toml(path: Any) -> dict[str, Any]:
    """The tables of a TOML config file.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    ValueError
        Invalid TOML (the message names the file and the error).
    """
    tomllib = _tomllib()
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML ({err})") from err
