"""The Verilog back-end: a fully pipelined design of hand-written primitives (ip/), simulated
with cocotb on Icarus or Verilator against the emulator."""
from __future__ import annotations

import numpy as np

from ...config import BuildConfig
from ...errors import FpgaqError, ModelError
from ...ir.graph import Graph
from ...ir.ops import Dense, Windows
from ...passes.fuse_relu_quant import FuseReluQuant
from ...passes.pipeline import Pass
from ...projectdir import Project
from ..base import Simulation, check_kernels
from .context import KERNELS, MULTI
from .rtlsim import run_rtlsim
from .stream import VerilogPlanner
from .summary import design_summary
from .writer import render_project


class VerilogBackend:
    name = "verilog"
    description = ("pipelined Verilog (io_parallel, reuse factors time-multiplexing dense layers; or io_stream: "
                   "pixels through line buffers), simulated with cocotb")

    def prepare(self, config: BuildConfig) -> tuple[Pass, ...]:
        return (FuseReluQuant(),)

    def check(self, graph: Graph, config: BuildConfig) -> None:
        stream = config.io == "io_stream"
        repeated = [n for n in graph.nodes if isinstance(n.op, Dense) and Dense.positions(graph[n.inputs[0]].out) > 1]
        if repeated and not stream:
            raise ModelError([f"{n.origin}: a MatMul over a {len(n.shape)}-D tensor (a dense layer at "
                              f"{Dense.positions(graph[n.inputs[0]].out)} positions); the Verilog back-end takes "
                              "dense layers of a vector: Flatten the input first, or use --backend hls"
                              for n in repeated])
        if len(graph.inputs) != 1:
            raise ModelError([f"the Verilog back-end takes models with one input; this one has {len(graph.inputs)}"])
        skip = graph.host | {q.name for q in graph.firmware_inputs}
        check_kernels(graph, {**KERNELS, **MULTI, **({Windows: None} if stream else {})}, "Verilog", skip)
        if stream:
            try:                        # what a stream of pixels cannot carry, named by its ONNX node
                VerilogPlanner(graph, config).plan()
            except ModelError:
                raise
            except FpgaqError as e:
                raise ModelError([str(e)]) from None

    def render(self, graph: Graph, config: BuildConfig) -> dict[str, str]:
        self.check(graph, config)
        return render_project(graph, config)

    def simulate(self, project: Project, x: np.ndarray, **options) -> Simulation:
        return run_rtlsim(project, x, **options)

    def summary(self, graph: Graph, config: BuildConfig, layers: list[str]) -> dict:
        """The design's own latency, adders and registers, for the report (in place of the HLS estimate)."""
        return design_summary(graph, config, layers)
