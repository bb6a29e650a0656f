"""The Vitis HLS back-end: hand-written C++ kernels specialised by generated configs,
C-simulated with g++ against the emulator."""
from __future__ import annotations

import numpy as np

from ...config import BuildConfig
from ...ir.graph import Graph
from ...ir.ops import Windows
from ...passes.pipeline import Pass
from ...projectdir import Project
from ..base import Simulation, check_kernels
from .context import KERNELS, MULTI
from .csim import run_csim
from .stream import stream_context, stream_fifos
from .writer import render_project


class HlsBackend:
    name = "hls"
    description = "Vitis HLS C++ (io_parallel or io_stream), C-simulated with g++"

    def prepare(self, config: BuildConfig) -> tuple[Pass, ...]:
        return ()

    def check(self, graph: Graph, config: BuildConfig) -> None:
        kernels: dict[type, object] = {**KERNELS, **MULTI}
        if config.io == "io_stream":
            kernels[Windows] = stream_context       # a line buffer, streaming only
        check_kernels(graph, kernels, "HLS", graph.host | {q.name for q in graph.firmware_inputs})

    def render(self, graph: Graph, config: BuildConfig) -> dict[str, str]:
        self.check(graph, config)
        return render_project(graph, config)

    def fifos(self, graph: Graph, config: BuildConfig) -> dict | None:
        """io_stream: the FIFOs between stages with their computed depths and cost; else None."""
        return stream_fifos(graph, config) if config.io == "io_stream" else None

    def simulate(self, project: Project, x: np.ndarray, **options) -> Simulation:
        return run_csim(project, x)
