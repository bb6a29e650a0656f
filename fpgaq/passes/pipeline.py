"""The one ordered list of passes, and the runner that verifies after each."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import BuildConfig
from ..ir.graph import Graph, verify
from .dead_nodes import EliminateDeadNodes
from .reuse import TileByReuse
from .widths import PropagateWidths
from .zero_weights import EliminateZeroWeights


def pipeline(config: BuildConfig = BuildConfig()) -> tuple:
    """The passes, in the order they run; their options come from the build config."""
    return (
        EliminateDeadNodes(),
        EliminateZeroWeights(),
        PropagateWidths(),
        TileByReuse(default=config.reuse if config.reuse != "auto" else 1,
                    per_layer=tuple(sorted(config.layer_reuse.items())),
                    auto=config.reuse == "auto", dsp_budget=config.dsp_budget,
                    clock_ns=config.clock_ns),
    )


def run_pipeline(graph: Graph, passes: tuple | None = None,
                 hook: Callable[[int, object, Graph], None] | None = None) -> Graph:
    """Run `passes` (default: the pipeline of the default config) in order; verify the graph
    after each and call `hook(index, pass, graph)`."""
    passes = pipeline() if passes is None else passes
    verify(graph)
    if hook:
        hook(0, None, graph)
    for i, p in enumerate(passes, start=1):
        graph = p.run(graph)
        verify(graph)
        if hook:
            hook(i, p, graph)
    return graph


def dump_hook(folder: Path) -> Callable[[int, object, Graph], None]:
    """A hook writing the IR after every pass into `folder` (fpgaq build --dump-ir)."""
    from ..ir.dump import dump_text
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def hook(i: int, p, graph: Graph) -> None:
        name = "import" if p is None else p.name
        (folder / f"{i:02d}_{name}.txt").write_text(dump_text(graph))
    return hook
