"""The installed template folders and the one Jinja set-up every back-end renders with."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2

from .user_cache import user_cache

OPTIONS = dict(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
               autoescape=False)


def template_dir(backend: str) -> Path:
    """The installed templates/<backend> folder (package data)."""
    return Path(str(resources.files("fpgaq.templates") / backend))


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept in the user's cache (compiling them is most of a small build's
    time): Jinja keys each on its name and checks its source and Jinja's own version; the
    folder is keyed on these options, which change the code too. Written atomically by Jinja."""
    options = repr(sorted((k, getattr(v, "__name__", v)) for k, v in OPTIONS.items()))
    folder = user_cache("jinja", hashlib.sha256(options.encode()).hexdigest()[:16])
    return None if folder is None else jinja2.FileSystemBytecodeCache(str(folder))


@lru_cache(maxsize=None)
def environment(backend: str) -> jinja2.Environment:
    """Strict: an undefined name in a template is an error, never an empty string. One a
    process: its templates are compiled once, or read compiled from the user's cache."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir(backend))),
                              bytecode_cache=_bytecode_cache(), **OPTIONS)  # type: ignore[arg-type]
