"""What a back-end is: the ops it accepts, its own preparation passes, how it renders a
project's files, and how it simulates them against the emulator."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..config import BuildConfig
from ..errors import ModelError
from ..ir.graph import Graph
from ..passes.pipeline import Pass
from ..projectdir import Project


@dataclass
class Simulation:
    """One simulation of a project's firmware, compared with the emulator code for code."""
    n: int
    simulator: str
    mismatch_count: int = 0
    mismatches: list[tuple] = field(default_factory=list)   # (sample, output, expected, got)
    outputs: list[np.ndarray] = field(default_factory=list)   # the codes it computed, a tensor each
    build_s: float = 0.0
    run_s: float = 0.0
    cached: bool = False                 # the build was reused
    latency_cycles: int | None = None    # measured, where the simulator runs cycles
    ii: float | None = None

    @property
    def ok(self) -> bool:
        return self.mismatch_count == 0

    def real_outputs(self, graph: Graph) -> list[np.ndarray]:
        """The real values of the outputs it computed, an array a model output (float64), as
        `fpgaq csim --output` and `fpgaq rtlsim --output` write them."""
        return [graph.real_outputs(i, codes) for i, codes in enumerate(self.outputs)]


def compare(expected: Sequence[np.ndarray], produced: Sequence[np.ndarray]) -> tuple[int, list]:
    """How many codes differ, and the first ten as (sample, output, expected, got); outputs are
    numbered across all tensors."""
    count, base = 0, 0
    first: list[tuple] = []
    for exp, got in zip(expected, produced):
        exp = np.asarray(exp, dtype=object).reshape(len(exp), -1)      # N-d outputs: flattened, as on the ports
        got = np.asarray(got, dtype=object).reshape(len(got), -1)
        diff = np.argwhere(exp != got)
        count += len(diff)
        for s, o in diff[:max(0, 10 - len(first))]:
            g = got[s, o]
            first.append((int(s), base + int(o), int(exp[s, o]), int(g) if isinstance(g, (int, np.integer)) else g))
        base += np.shape(exp)[1]
    return count, first


def check_kernels(graph: Graph, kernels: Mapping[type, object], backend: str, skip: AbstractSet[str]) -> None:
    """Every node (but the inputs and `skip`) has a kernel in `kernels`; else one problem a
    node, each naming its ONNX node."""
    problems = [f"{n.origin}: the {backend} back-end has no kernel for {n.op.kind} (fpgaq's IR op of this "
                f"node) yet; export the model without it"
                for n in graph.nodes if n.name not in skip and type(n.op) not in kernels and n.inputs]
    if problems:
        raise ModelError(problems)


class Backend(Protocol):
    name: str
    description: str

    def prepare(self, config: BuildConfig) -> tuple[Pass, ...]:
        """Passes that shape the graph for this back-end, run after the pipeline."""
        ...

    def check(self, graph: Graph, config: BuildConfig) -> None:
        """A ModelError naming each ONNX node this back-end cannot build."""
        ...

    def render(self, graph: Graph, config: BuildConfig) -> dict[str, str]:
        """{relative path: text} of the project's generated sources."""
        ...

    def simulate(self, project: Project, x: np.ndarray, **options) -> Simulation:
        """Run the firmware on real inputs x and compare every output with the emulator."""
        ...

    # Optionally, `summary(graph, config, layers) -> dict`: the design's own numbers (latency,
    # resources, a dict per layer of `layers`) where the back-end counts them itself; the report
    # shows them in place of fpgaq's HLS estimate (fpgaq.report.report_data's `design`).
