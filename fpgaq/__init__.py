"""fpgaq: pruned, fixed-point-quantized ONNX networks to bit-exact FPGA firmware.

The Python API (fpgaq.api), in a notebook or a script:

    import fpgaq
    prj = fpgaq.build("model.onnx", "model_hls", reuse=2)    # settings as in fpgaq.yaml
    r = prj.csim()                   # SimResult: r.bit_exact, r.outputs, r.mismatches, r.run_s
    prj.report                       # report.json as a dict
    y = fpgaq.emulate("model.onnx", x)
    prj = fpgaq.open_project("model_hls")

Errors a user can fix are fpgaq.FpgaqError (ConfigError, ModelError, ToolError).
"""
from __future__ import annotations

__version__ = "0.1.0"

import types as _types
from typing import TYPE_CHECKING, Any

from . import emulate as _emulator          # the module: fpgaq.emulate.run, .output_codes, ...
from .errors import ConfigError, FpgaqError, ModelError, ToolError

if TYPE_CHECKING:
    from .api import InputsLike, ModelLike, Project, SimResult, build, open_project

# The API (fpgaq.api) is imported when one of its names is first used, not with the package:
# the command line (fpgaq.cli) and every module of fpgaq import this package first, and the API
# pulls in every back-end and simulator.
_API = ("InputsLike", "ModelLike", "Project", "SimResult", "build", "open_project")


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'fpgaq' has no attribute {name!r}")


class _CallableModule(_types.ModuleType):
    """fpgaq.emulate is both the emulator module (fpgaq.emulate.run, used across fpgaq and by
    `from fpgaq import emulate`) and, called, the API function fpgaq.api.emulate. (Type
    checkers see the module only: typed code calls fpgaq.api.emulate, the same function.)"""

    def __call__(self, model: Any, x: Any, **config: Any) -> Any:
        """fpgaq.api.emulate(model, x, **config): the real outputs of the bit-exact emulator."""
        from .api import emulate
        return emulate(model, x, **config)


_emulator.__class__ = _CallableModule
emulate = _emulator

__all__ = ["__version__", "build", "open_project", "emulate", "Project", "SimResult", "ModelLike", "InputsLike",
           "FpgaqError", "ConfigError", "ModelError", "ToolError"]
