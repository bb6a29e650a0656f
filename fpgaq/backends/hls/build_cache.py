"""What C-simulation builds keep for the next one, per user (XDG_CACHE_HOME, else ~/.cache,
under fpgaq/csim): a precompiled header of the ap_types headers, and object files keyed on
everything that makes them (compiler, flags, headers, source text).

Every entry is written beside its place and renamed into it, so runs at the same time never see
half an entry; an object carries the SHA-256 of its bytes and is checked when read, a
precompiled header its size, and g++ checks the rest (a damaged one is reported, then rebuilt).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from ..user_cache import key, prune, user_cache

OBJECTS_KEPT = 512      # object files kept (the least recently used go first); ~50 kB each
PCH_KEPT = 3            # precompiled headers kept (~80 MB each: one a compiler and set of flags)
PCH_NAME = "fpgaq_ap_types.h"
# what every generated source includes from outside the project: precompiled once a user
PCH_TEXT = "".join(f"#include <{h}>\n" for h in (
    "ap_fixed.h", "ap_int.h", "hls_stream.h", "cstdio", "cstdlib", "fstream", "iostream", "sstream", "string",
    "vector"))
_MAGIC = b"fpgaq-object sha256="


def cache_root() -> Path | None:
    """The user's C-simulation cache folder; None where there can be none (every build then
    compiles everything)."""
    return user_cache("csim")


@lru_cache(maxsize=8)
def compiler_id(cxx: str) -> str:
    """The compiler as it identifies itself (its resolved path, version and target): another
    compiler, or an upgrade, makes other keys."""
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    target = subprocess.run([cxx, "-dumpmachine"], capture_output=True, text=True).stdout
    return f"{shutil.which(cxx) or cxx}\n{out}\n{target}"


@lru_cache(maxsize=8)
def _tree_hash(folder: str, stamp: tuple) -> str:
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    return key(*[part for p in files for part in (str(p.relative_to(folder)), p.read_bytes())])


def tree_hash(folder: Path) -> str:
    """A hash of every file below `folder` (the ap_types headers), by name and content; read
    again when any file's size or time changes."""
    stamp = tuple((str(p), s.st_size, s.st_mtime_ns) for p in sorted(folder.rglob("*"))
                  if p.is_file() and (s := p.stat()))
    return _tree_hash(str(folder), stamp)


_INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*(["<])([^">]+)[">]', re.M)
_COMPUTED = re.compile(rb"^[ \t]*#[ \t]*include[ \t]*[A-Za-z_]", re.M)


def source_key(source: Path, include_dirs: Iterable[Path]) -> bytes:
    """The text of `source` and of every header it includes from the project, recursively
    (`#include "..."` found beside the including file or in include_dirs): what an object
    file is made of, beside the system and ap_types headers (keyed on their own). A computed
    include (`#include MACRO`) takes every file of include_dirs instead."""
    dirs = [Path(d) for d in include_dirs]
    seen: dict[Path, bytes] = {}
    todo = [source.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        text = seen[path] = path.read_bytes()
        if _COMPUTED.search(text):
            todo += [p.resolve() for d in dirs for p in sorted(d.iterdir()) if p.is_file()]
        for kind, name in _INCLUDE.findall(text):
            where = ([path.parent] if kind == b'"' else []) + dirs
            found = next((d / name.decode() for d in where if (d / name.decode()).is_file()), None)
            if found is not None:
                todo.append(found.resolve())
    # by content and by the name each was included as: moving the project changes nothing
    return b"".join(len(t).to_bytes(8, "little") + p.name.encode() + b"\0" + t for p, t in sorted(seen.items(),
                    key=lambda pt: (pt[0].name, pt[1])))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ObjectCache:
    """Object files by key, each stored as a line with the SHA-256 of its bytes, then the bytes."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "objects"
        self.folder.mkdir(exist_ok=True)

    def get(self, k: str, dest: Path) -> bool:
        """Copy the object of key k to dest; False if there is none or it is damaged."""
        path = self.folder / f"{k}.o"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        head, sep, body = data.partition(b"\n")
        if not sep or head != _MAGIC + hashlib.sha256(body).hexdigest().encode():
            return False                      # damaged: compiled again, and put back whole
        dest.write_bytes(body)
        os.utime(path)                        # recently used
        return True

    def put(self, k: str, obj: Path) -> None:
        body = obj.read_bytes()
        _atomic_write(self.folder / f"{k}.o", _MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
        prune(self.folder, "*.o", OBJECTS_KEPT)


def _whole(folder: Path) -> bool:
    """Whether a precompiled header folder is complete (its .gch as long as when it was made)."""
    try:
        return int((folder / "size").read_text()) == (folder / f"{PCH_NAME}.gch").stat().st_size
    except (OSError, ValueError):
        return False


def precompiled_header(root: Path, cxx: str, flags: list[str], build_key: str) -> Path | None:
    """The header to `-include`, with its .gch beside it, made if missing (once a user, a
    compiler and set of flags); None if g++ cannot make one (the units then compile without:
    any real problem with the headers shows there)."""
    folder = root / "pch" / key(build_key, PCH_TEXT)
    header = folder / PCH_NAME
    if _whole(folder):
        os.utime(folder)                      # recently used
        return header
    (root / "pch").mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root / "pch", prefix=".tmp-"))
    try:
        (tmp / PCH_NAME).write_text(PCH_TEXT)
        gch = tmp / f"{PCH_NAME}.gch"
        r = subprocess.run([cxx, *flags, "-x", "c++-header", str(tmp / PCH_NAME), "-o", str(gch)],
                           capture_output=True, text=True)
        if r.returncode:
            return None
        (tmp / "size").write_text(str(gch.stat().st_size))
        if not _whole(folder):                # else another run made it meanwhile: use that one
            if folder.exists():               # damaged
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.rename(tmp, folder)
            except OSError:                   # another run renamed its own into place first
                if not _whole(folder):
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune(root / "pch", "[0-9a-f]*", PCH_KEPT)
    return header


def drop_precompiled_header(header: Path) -> None:
    """Remove a precompiled header g++ refused (damaged): the next build makes it again."""
    shutil.rmtree(header.parent, ignore_errors=True)
