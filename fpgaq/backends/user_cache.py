"""The user's cache folder for what builds can reuse (XDG_CACHE_HOME, else ~/.cache, then
fpgaq/): compiled templates, precompiled headers, object files."""
from __future__ import annotations

import os
from pathlib import Path


def user_cache(*parts: str) -> Path | None:
    """The folder fpgaq/<parts...> of the user's cache, made if missing; None where it cannot
    be made or written (a read-only home: everything is then made afresh)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base, "fpgaq", *parts)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None
