"""The installed template folders and the one Jinja set-up every back-end renders with."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2


def template_dir(backend: str) -> Path:
    """The installed templates/<backend> folder (package data)."""
    return Path(str(resources.files("fpgaq.templates") / backend))


@lru_cache(maxsize=None)
def environment(backend: str) -> jinja2.Environment:
    """Strict: an undefined name in a template is an error, never an empty string. One a
    process: its templates are compiled once."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir(backend))),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, autoescape=False)
