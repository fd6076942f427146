"""Request bodies declared as msgspec Structs, and their errors named by field.

A body is a :class:`Body` (or a plain type) whose fields carry their
constraints (``msgspec.Meta``: bounds, patterns, lengths) and a ``description``
saying what the field must be. :func:`decode` converts a parsed JSON (or YAML)
value strictly (a boolean is a JSON boolean, a number is no string) and turns
msgspec's ``ValidationError`` ("Expected `int` >= 1 - at `$.points`") into the
API's error: ``BadRequest("points must be a whole number from 1 to 10000000")``.
The value sent is never echoed (it may be a NIK or a voucher code).

Texts a subscriber may see are declared with :func:`text` (GSM-7, no control
characters, one line unless ``lines``, at most ``limit`` septets, stripped);
a text in both languages is a :class:`Texts` subclass naming its limit.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from functools import lru_cache
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta

from ussd_app.core import formats, gsm7
from ussd_app.core.errors import BadRequest

__all__ = ["Body", "IsoTime", "Meta", "Texts", "decode", "explain", "near_time", "text", "texts"]

_TEXT = "ussd_text"  # the key of a text's rules in Meta.extra


def text(limit: int, required: bool = True, lines: bool = False) -> Meta:
    """A subscriber-facing text's declaration: ``Annotated[str, text(30)]``."""
    return Meta(description=f"a text of at most {limit} characters",
                extra={_TEXT: (limit, required, lines)})


def _metas(hint) -> list[Meta]:
    """The Meta objects declared on ``hint``, also inside ``X | None``."""
    found = []
    if typing.get_origin(hint) is Annotated:
        found += [m for m in hint.__metadata__ if isinstance(m, Meta)]
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            found += _metas(arg)
    return found


def _bare(hint):
    """``hint`` without Annotated, and without None/UNSET in a union of one more type."""
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a not in (type(None), msgspec.UnsetType)]
        if len(rest) == 1:
            return _bare(rest[0])
    return hint


@lru_cache(maxsize=None)
def _fields(cls) -> dict:
    """JSON name -> (attribute, declared type) of a Struct or dataclass ``cls``."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls, include_extras=True)
        return {f.name: (f.name, hints[f.name]) for f in dataclasses.fields(cls)}
    return {f.encode_name: (f.name, f.type) for f in msgspec.structs.fields(cls)}


@lru_cache(maxsize=None)
def _texts_of(cls) -> tuple:
    """(attribute, JSON name, limit, required, lines) of each declared text of ``cls``."""
    out = []
    for name, (attr, hint) in _fields(cls).items():
        for meta in _metas(hint):
            if meta.extra and _TEXT in meta.extra:
                out.append((attr, name, *meta.extra[_TEXT]))
    return tuple(out)


class Body(msgspec.Struct):
    """A request body (or part of one): its texts are checked as it is made."""

    def __post_init__(self):
        for attr, name, limit, required, lines in _texts_of(type(self)):
            value = getattr(self, attr)
            if value is msgspec.UNSET or (value is None and required):
                continue  # left out, where the declaration allows it
            value = (value or "").strip()
            if required and not value:
                raise ValueError(f"{name} is required")
            why = gsm7.text_problem(value, limit, lines=lines)
            if why:
                raise ValueError(f"{name} {why}")
            setattr(self, attr, value)


class Texts(Body, forbid_unknown_fields=True):
    """A text in Indonesian (``id``, required) and English (``en``). A subclass
    sets LIMIT and LINES; a plain string in a body stands for ``{"id": ...}``."""
    LIMIT: ClassVar[int] = 160
    LINES: ClassVar[bool] = False
    DESCRIPTION: ClassVar[str] = 'a text, or texts by language: {"id": ..., "en": ...} (id required)'
    id: Annotated[str, Meta(description="an Indonesian text")]
    en: str | None = None

    def __post_init__(self):
        for lang in ("id", "en"):
            value = getattr(self, lang)
            if value is None:
                continue
            value = value.strip()
            if not value:
                raise ValueError(f"{lang} is required" if lang == "id" else f"{lang} must not be blank")
            why = gsm7.text_problem(value, self.LIMIT, lines=self.LINES)
            if why:
                raise ValueError(f"{lang} {why}")
            setattr(self, lang, value)

    def as_dict(self) -> dict:
        return {lang: t for lang, t in (("id", self.id), ("en", self.en)) if t is not None}


_NEAR = f"an ISO 8601 time within {formats.NEAR_YEARS} years of now, e.g. 2026-12-31T23:59:00+07:00"
IsoTime = Annotated[str, Meta(max_length=64, description=_NEAR)]
"""A time an operator sends (read with :func:`near_time`)."""


def near_time(value: str | None, name: str, now: float) -> float | None:
    """An :data:`IsoTime` field's ``value`` as epoch seconds (None stays None);
    BadRequest naming ``name`` when it is no time within ``formats.NEAR_YEARS`` of ``now``."""
    if value is None:
        return None
    try:
        return formats.parse_near(value, now)
    except ValueError:
        raise BadRequest(f"{name} must be {_NEAR}") from None


def texts(value):
    """A body's text in both languages as msgspec takes it (a plain string is the Indonesian)."""
    return {"id": value} if isinstance(value, str) else value


# -- errors ---------------------------------------------------------------------
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>.*)`)?$", re.DOTALL)
_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `")
_MSGSPEC = ("Expected ", "Invalid ", "Object ", "Integer value out of range")
_KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a text",
          dict: "an object", list: "a list"}


def _step(hint, part):
    """The type at ``part`` (a field name, a list index, '...' for a dict value) of ``hint``."""
    hint = _bare(hint)
    origin = typing.get_origin(hint)
    if part != "..." and _is_record(hint):
        return _fields(hint).get(part, (None, None))[1]
    if origin in (list, tuple, set, frozenset) and part != "...":
        return typing.get_args(hint)[0] if typing.get_args(hint) else Any
    if origin is dict:
        return typing.get_args(hint)[1] if typing.get_args(hint) else Any
    return None


def _is_record(hint) -> bool:
    return isinstance(hint, type) and (issubclass(hint, msgspec.Struct) or dataclasses.is_dataclass(hint))


def _field_names(hint) -> list[str]:
    hint = _bare(hint)
    return list(_fields(hint)) if _is_record(hint) else []


def describe(hint) -> str | None:
    """What a value of ``hint`` must be: its declared description, else its kind."""
    for meta in _metas(hint):
        if meta.description:
            return meta.description
    bare = _bare(hint)
    if isinstance(getattr(bare, "DESCRIPTION", None), str):
        return bare.DESCRIPTION
    if typing.get_origin(bare) is typing.Literal:
        choices = [str(c) for c in typing.get_args(bare)]
        return choices[0] if len(choices) == 1 else (
            "one of " + ", ".join(choices) if len(choices) > 2 else " or ".join(choices))
    return _KINDS.get(typing.get_origin(bare) or bare)


def explain(error: msgspec.ValidationError, root, where: str = "") -> str:
    """msgspec's ``error`` for a value of type ``root`` in the API's words,
    naming the field (``where`` is the name of the whole value, if any)."""
    m = _AT.match(str(error))
    msg, path = m["msg"], m["path"] or ""
    parts, names = [], [where] if where else []
    for name, index in _PART.findall(path):
        parts.append(name or index)
        names.append(name if name else f"[{index}]")
    hint = root
    for part in parts:
        hint = _step(hint, part) if hint is not None else None
    here = ".".join(names).replace(".[", "[")

    def named(rest: str) -> str:
        return f"{here}.{rest}" if here else rest
    missing = _MISSING.match(msg)
    if missing:
        field = missing["field"]
        wanted = describe(_step(hint, field)) if hint is not None else None
        return named(f"{field} must be {wanted}" if wanted else f"{field} is required")
    if _UNKNOWN.match(msg):
        return f"{here or 'body'} may only have " + ", ".join(_field_names(hint))
    if msg.startswith("must "):  # a Body's own check of itself as a whole
        return f"{here or 'body'} {msg}"
    if not msg.startswith(_MSGSPEC):  # a Body's own check: it names its field
        return named(msg)
    wanted = describe(hint) if hint is not None else None
    if not here:
        return "body must be a JSON object" if "`object`" in msg else f"body must be {wanted or 'valid'}"
    return f"{here} must be {wanted}" if wanted else f"{here} is not valid"


def decode(value, kind, where: str = ""):
    """``value`` (parsed JSON or YAML) as ``kind``, strictly; BadRequest names the wrong field."""
    try:
        return msgspec.convert(value, kind, strict=True)
    except msgspec.ValidationError as e:
        raise BadRequest(explain(e, kind, where)) from None
