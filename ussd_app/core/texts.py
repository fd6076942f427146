"""Subscriber-facing texts by key, in each language.

Core keeps no texts of its own and reads nothing above it: the composition root
(``ussd_app/__init__.py``) registers where they come from as the package starts
(:func:`register`; for this service ``menus/texts/<lang>.yaml``)."""
from __future__ import annotations

from collections.abc import Callable
from functools import cache

import yaml

LANGUAGES = ("id", "en")
DEFAULT = "id"

_source: Callable[[str], str] | None = None


def register(source: Callable[[str], str]) -> None:
    """Where the texts come from: ``source(lang)`` answers that language's YAML."""
    global _source
    _source = source
    catalog.cache_clear()


@cache
def catalog(lang: str) -> dict[str, str]:
    """Every text of ``lang`` by its dotted key (``help.title``), read once."""
    if _source is None:
        raise RuntimeError("no texts registered: the composition root (ussd_app/__init__.py) "
                           "registers them with texts.register at start-up")
    return _flatten(yaml.safe_load(_source(lang)))


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = str(v).rstrip("\n")
    return flat


def t(lang: str, key: str, **values) -> str:
    """The text ``key`` in ``lang`` (Indonesian when missing), filled with ``values``."""
    text = catalog(lang if lang in LANGUAGES else DEFAULT).get(key)
    if text is None:
        text = catalog(DEFAULT)[key]
    return text.format(**values) if values else text
