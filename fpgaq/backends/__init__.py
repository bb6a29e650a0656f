"""The back-ends, by name: the one place their names are defined. Each is imported when first
asked for, so a build pays only for its own."""
from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..errors import ConfigError
from .base import Backend

NAMES = ("hls", "verilog")
_MADE: dict[str, Backend] = {}


def backend(name: str) -> Backend:
    if name not in NAMES:
        raise ConfigError(f"backend '{name}' is unknown; use one of {', '.join(NAMES)}")
    if name not in _MADE:
        if name == "hls":
            from .hls.backend import HlsBackend
            _MADE[name] = HlsBackend()
        else:
            from .verilog.backend import VerilogBackend
            _MADE[name] = VerilogBackend()
    return _MADE[name]


class _Backends(Mapping[str, Backend]):
    """{name: back-end}, each made when looked up."""

    def __getitem__(self, name: str) -> Backend:
        if name not in NAMES:
            raise KeyError(name)
        return backend(name)

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


BACKENDS: Mapping[str, Backend] = _Backends()
