"""The user's cache folder for what builds can reuse (XDG_CACHE_HOME, else ~/.cache, then
fpgaq/): compiled templates, precompiled headers, object files, simulator builds; the keys
they are filed under and the pruning that keeps them few."""
from __future__ import annotations

import hashlib
import os
import shutil
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


def key(*parts: str | bytes) -> str:
    """A hash of the parts, each length-prefixed (no two lists of parts share one)."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()[:32]


def prune(folder: Path, pattern: str, keep: int) -> None:
    """Remove all but the `keep` most recently used entries of `folder` matching `pattern`
    (files or folders; another run may remove one at the same time: a missing entry is fine)."""
    entries = []
    for p in folder.glob(pattern):
        try:
            entries.append((p.stat().st_mtime, p))
        except FileNotFoundError:
            pass
    for _, p in sorted(entries, reverse=True)[keep:]:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
