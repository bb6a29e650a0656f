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
from typing import Any

import numpy as np

from . import emulate as _emulator          # the module: fpgaq.emulate.run, .output_codes, ...
from .api import InputsLike, ModelLike, Project, SimResult, build, open_project
from .api import emulate as _emulate
from .errors import ConfigError, FpgaqError, ModelError, ToolError


class _CallableModule(_types.ModuleType):
    """fpgaq.emulate is both the emulator module (fpgaq.emulate.run, used across fpgaq and by
    `from fpgaq import emulate`) and, called, the API function fpgaq.api.emulate. (Type
    checkers see the module only: typed code calls fpgaq.api.emulate, the same function.)"""

    def __call__(self, model: ModelLike | Project, x: InputsLike, **config: Any) -> np.ndarray | list[np.ndarray]:
        return _emulate(model, x, **config)


_CallableModule.__call__.__doc__ = _emulate.__doc__
_emulator.__class__ = _CallableModule
emulate = _emulator

__all__ = ["__version__", "build", "open_project", "emulate", "Project", "SimResult", "ModelLike", "InputsLike",
           "FpgaqError", "ConfigError", "ModelError", "ToolError"]
