"""The compiler: the one ordered list of passes, and the runner that verifies after each."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..config import BuildConfig
from ..ir.graph import Graph, verify
from .averages import LowerAverages
from .dead_nodes import EliminateDeadNodes
from .fold_batchnorm import FoldBatchNorm
from .fold_affine import FoldAffine
from .fold_affine_forward import FoldAffineForward
from .fold_constants import FoldConstants
from .fold_input_clips import FoldInputClips
from .float_outputs import QuantizeFloatOutputs
from .fold_scales import FoldScales
from .lower_conv import LowerConv
from .lower_gemm import LowerGemm
from .requantizers import ChooseRequantizers, tail_bits
from .tables import LowerTables
from .reuse import TileByReuse
from .zero_weights import EliminateZeroWeights


class Pass(Protocol):
    """A pure rewrite: a frozen dataclass whose fields are its options."""
    @property
    def name(self) -> str: ...

    def run(self, graph: Graph) -> Graph: ...


Hook = Callable[[int, "Pass | None", Graph], None]


def pipeline(config: BuildConfig = BuildConfig()) -> tuple[Pass, ...]:
    """The passes, in the order they run; their options come from the build config."""
    return (
        FoldConstants(),                  # quantized weights and biases become constants
        LowerConv(stream=config.io == "io_stream"),  # Conv: a dense layer (its unrolled matrix, or per window)
        LowerGemm(),                      # alpha, beta, transB: MatMul + Add
        FoldAffineForward(requantize=config.requantize),  # a x + b between a quantizer and MatMuls: into their weights and bias
        FoldAffine(requantize=config.requantize),   # MatMul, then + - * / constants: Dense
        FoldBatchNorm(requantize=config.requantize),
        LowerAverages(requantize=config.requantize),  # an average's division: into the quantizer after it
        QuantizeFloatOutputs(requantize=config.requantize, bits=tail_bits(config.requant_bits)),  # a float tail
        LowerTables(softmax=config.softmax, bits=config.table_bits, frac=config.table_frac),  # Sigmoid, Softmax, ...
        ChooseRequantizers(bits=config.requant_bits, thresholds=config.thresholds),  # float scales
        EliminateDeadNodes(),             # what the folds above left behind
        FoldScales(),                     # relabels of the binary point and float factors
        FoldInputClips(),                 # a Clip on the model input: into its quantizer
        EliminateZeroWeights(),
        TileByReuse(default=1 if config.reuse == "auto" else int(config.reuse),
                    per_layer=tuple(sorted(config.layer_reuse.items())),
                    auto=config.reuse == "auto", dsp_budget=config.dsp_budget,
                    clock_ns=config.clock_ns, serial=config.io == "io_stream",
                    lut_budget=config.lut_budget, shift_add=config.backend == "verilog"),
    )


def run_pipeline(graph: Graph, passes: Sequence[Pass] | None = None, hook: Hook | None = None) -> Graph:
    """Run `passes` (default: the pipeline of the default config) in order; verify the graph
    after each and call `hook(index, pass, graph)` (index 0: the graph as imported)."""
    passes = pipeline() if passes is None else passes
    verify(graph)
    if hook:
        hook(0, None, graph)
    for i, p in enumerate(passes, start=1):
        graph, before = p.run(graph), graph
        verify(graph, before)
        if hook:
            hook(i, p, graph)
    return graph
