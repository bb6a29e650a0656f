"""The back-ends, by name: the one place their names are defined."""
from __future__ import annotations

from ..errors import ConfigError
from .base import Backend
from .hls.backend import HlsBackend
from .verilog.backend import VerilogBackend

BACKENDS: dict[str, Backend] = {"hls": HlsBackend(), "verilog": VerilogBackend()}
NAMES = tuple(BACKENDS)


def backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise ConfigError(f"backend '{name}' is unknown; use one of {', '.join(NAMES)}")
    return BACKENDS[name]
