"""One frozen build configuration, from YAML and the command line, validated with clear errors."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import ConfigError
from .ir.fixed import FixedType
from .names import identifier, is_reserved

DEFAULT_PART = "xcvu13p-flga2577-2-e"


def _whole(v, least: int) -> bool:
    """An int (not a YAML true/false) of at least `least`."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class BuildConfig:
    name: str = "fpgaq_model"          # the top function's name: a C identifier
    part: str = DEFAULT_PART           # the FPGA part for Vitis HLS
    clock_ns: float = 5.0              # target clock period
    io: str = "io_parallel"            # io_parallel: all values at once; io_stream: streams of pixels
    backend: str = "hls"               # a name of fpgaq.backends.BACKENDS (checked by the driver)
    reuse: int | str = 1               # default reuse factor, or "auto" (needs dsp_budget or lut_budget)
    dsp_budget: int | None = None      # DSPs the design may use, for reuse "auto"
    lut_budget: int | None = None      # LUTs the design may use (estimated), for reuse "auto"
    layer_reuse: dict = field(default_factory=dict)  # per-layer reuse factors by IR or ONNX name
    tb_samples: int = 1000             # test-bench samples written into the project
    max_ops: int = 10_000_000          # refuse models needing more multiply-accumulates an input
    requantize: bool = False           # lower float scales to integer multiplier-and-shift
    requant_bits: int | str = "auto"   # significant bits of each requantisation multiplier, or "auto"
    thresholds: str = "auto"           # a float-scaled quantizer as thresholds: auto (where cheaper), always, never
    input_type: str | None = None      # quantize an unquantized model input: 'fixed<16,6>', ...
    softmax: str = "table"             # a Softmax: table (exp and 1/sum lookup tables), argmax, or skip (the logits)
    table_bits: int = 10               # a lookup table (an activation, a Softmax's exp and 1/sum) has at most 2**bits entries
    table_frac: int = 15               # fraction bits of a table's output where no quantizer follows it

    def __post_init__(self):
        for key in ("name", "part", "io", "backend"):
            if not isinstance(getattr(self, key), str):
                raise ConfigError(f"{key} {getattr(self, key)!r} must be text")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", self.name) or is_reserved(self.name):
            raise ConfigError(f"name {self.name!r} is not usable as a C++/Verilog identifier; use letters, "
                              "digits and _, not starting with a digit, and not a keyword")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{3,64}", self.part):
            raise ConfigError(f"part '{self.part}' does not look like an FPGA part number "
                              "(for example xcvu13p-flga2577-2-e)")
        if not (_number(self.clock_ns) and 0.5 <= self.clock_ns <= 1000):
            raise ConfigError(f"clock_ns {self.clock_ns!r} must be a number of nanoseconds from 0.5 to 1000")
        if self.io not in ("io_parallel", "io_stream"):
            raise ConfigError(f"io '{self.io}' must be io_parallel (every value at once) or io_stream "
                              "(streams of pixels between layers)")
        if not (self.reuse == "auto" or _whole(self.reuse, 1)):
            raise ConfigError(f"reuse {self.reuse!r} must be a positive integer or 'auto'")
        if self.dsp_budget is not None and not _whole(self.dsp_budget, 0):
            raise ConfigError(f"dsp_budget {self.dsp_budget!r} must be a non-negative integer")
        if self.dsp_budget is not None and self.reuse != "auto":
            raise ConfigError("dsp_budget only applies with reuse 'auto' (--reuse auto); set both or neither")
        if self.lut_budget is not None and not _whole(self.lut_budget, 1):
            raise ConfigError(f"lut_budget {self.lut_budget!r} must be a positive integer")
        if self.lut_budget is not None and self.reuse != "auto":
            raise ConfigError("lut_budget only applies with reuse 'auto' (--reuse auto); set both or neither")
        if not isinstance(self.layer_reuse, dict):
            raise ConfigError("layer_reuse must map layer names to reuse factors")
        for k, v in self.layer_reuse.items():
            if not _whole(v, 1):
                raise ConfigError(f"layer_reuse['{k}'] = {v!r} must be a positive integer")
        bits = self.requant_bits
        if not (bits == "auto" or (isinstance(bits, int) and _whole(bits, 2) and bits <= 32)):
            raise ConfigError(f"requant_bits {self.requant_bits!r} must be 'auto' or an integer from 2 to 32")
        if not isinstance(self.requantize, bool):
            raise ConfigError(f"requantize {self.requantize!r} must be true or false")
        if self.thresholds not in ("auto", "always", "never"):
            raise ConfigError(f"thresholds {self.thresholds!r} must be auto, always or never")
        if self.softmax not in ("table", "argmax", "skip"):
            raise ConfigError(f"softmax {self.softmax!r} must be table, argmax or skip")
        if not (_whole(self.table_bits, 1) and self.table_bits <= 16):
            raise ConfigError(f"table_bits {self.table_bits!r} must be an integer from 1 to 16")
        if not (_whole(self.table_frac, 1) and self.table_frac <= 30):
            raise ConfigError(f"table_frac {self.table_frac!r} must be an integer from 1 to 30")
        if not _whole(self.max_ops, 1):
            raise ConfigError(f"max_ops {self.max_ops!r} must be a positive integer")
        if self.input_type is not None:
            if not isinstance(self.input_type, str):
                raise ConfigError(f"input_type {self.input_type!r} must be text such as 'fixed<16,6>'")
            try:
                FixedType.parse(self.input_type)
            except ValueError as e:
                raise ConfigError(f"input_type: {e}") from None
        if not (_whole(self.tb_samples, 1) and self.tb_samples <= 10_000_000):
            raise ConfigError(f"tb_samples {self.tb_samples!r} must be between 1 and 10,000,000")

    def with_overrides(self, **kw) -> BuildConfig:
        """A copy with the given (non-None) command-line values."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_config(path: str | Path | None) -> BuildConfig:
    """The settings of a YAML config file (defaults where it is silent); a syntax error is one
    line with its place in the file."""
    if path is None:
        return BuildConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    import yaml         # here, not at the top: a build without a config file does not pay for it
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {e.problem or e.context}; "
                          "fix the file (settings are `key: value` lines)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return config_from_dict(data, str(path))


def default_name(model_stem: str, base: BuildConfig) -> str:
    """The top function's name when none is given: the config file's, else one made from the
    model file's name."""
    return base.name if base.name != BuildConfig.name else identifier(model_stem, set(), fallback="model")


# AMD/Xilinx part-number prefixes: 7 series, UltraScale(+) Kintex, Virtex, Zynq, Artix, Kria,
# Alveo, Versal; defence (xq) and automotive (xa) grades
PART_FAMILIES = ("xc7", "xcku", "xcvu", "xczu", "xcau", "xck2", "xcu", "xcve", "xcvp", "xcvc", "xcvm", "xcvh",
                 "xcv", "xq7", "xqku", "xqvu", "xqzu", "xqr", "xa7", "xazu")


def part_warning(part: str) -> str | None:
    """A warning for a part of no family fpgaq knows (the config checks only its spelling), or None."""
    if part.lower().startswith(PART_FAMILIES):
        return None
    return (f"part '{part}' is not of an AMD/Xilinx family fpgaq knows ({', '.join(PART_FAMILIES[:12])}, ...); "
            "Vitis HLS will refuse it if it is not a real part. Check it, for example xcvu13p-flga2577-2-e")


def config_from_dict(data, where: str = "config") -> BuildConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, found {type(data).__name__}")
    known = {f.name for f in fields(BuildConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; "
                          f"valid settings are {', '.join(sorted(known))}")
    if "layer_reuse" in data and not isinstance(data["layer_reuse"], dict):
        raise ConfigError(f"{where}: layer_reuse must map layer names to reuse factors")
    try:
        return BuildConfig(**data)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None
