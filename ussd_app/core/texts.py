"""Subscriber-facing texts, loaded once from ``menus/texts/<lang>.yaml``."""
from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

LANGUAGES = ("id", "en")
DEFAULT = "id"


@cache
def catalog(lang: str) -> dict[str, str]:
    raw = resources.files("menus").joinpath("texts", f"{lang}.yaml").read_text("utf-8")
    return _flatten(yaml.safe_load(raw))


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
