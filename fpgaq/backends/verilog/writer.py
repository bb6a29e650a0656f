"""Write the Verilog design of a network from the template context, with the primitives of ip/."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from ...config import BuildConfig
from ...ir.graph import Graph
from .. import templates
from .context import project_context
from .stream import stream_context

RTL = "rtl"
PARAMS = "fpgaq_params.vh"
MODES = "fpgaq_modes.vh"        # the rounding modes, for fpgaq_requant
# the hand-written modules every design uses, in compile order
# (the adders of constant multiplications are written in place: templates/verilog/adder.j2)
PRIMITIVES = ("fpgaq_ext.v", "fpgaq_requant.v", "fpgaq_bipolar.v", "fpgaq_threshold.v",
              "fpgaq_lut.v", "fpgaq_max.v", "fpgaq_mul.v", "fpgaq_index.v", "fpgaq_leaky.v", "fpgaq_divq.v",
              "fpgaq_hold.v", "fpgaq_phase.v", "fpgaq_rmul.v", "fpgaq_gate.v", "fpgaq_acc.v")
# the stream's own, after those, in an io_stream design
STREAM_PRIMITIVES = ("fpgaq_fifo.v", "fpgaq_windows.v", "fpgaq_regroup.v")
# integration wrappers for firmware engineers (copied alongside, not part of the core)
WRAPPERS = ("fpgaq_trigger_top.v", "fpgaq_axis.v")


def ip_dir() -> Path:
    """The installed ip/ folder of hand-written Verilog (package data)."""
    return Path(str(resources.files("fpgaq.ip")))


def core_sources(top: str, stream: bool = False) -> list[str]:
    """Paths, relative to the project, of the files that make up the core, in compile order
    (`stream`: an io_stream design's)."""
    return [f"{RTL}/{p}" for p in PRIMITIVES + (STREAM_PRIMITIVES if stream else ())] + [f"{RTL}/{top}.v"]


def render_project(graph: Graph, config: BuildConfig) -> dict[str, str]:
    """{relative path: text} of every generated source file."""
    if config.io == "io_stream":
        return render_stream_project(graph, config)
    ctx = project_context(graph, config)
    env = templates.environment("verilog")
    top = ctx["top"]
    files = {
        f"{RTL}/{top}.v": env.get_template("top.v.j2").render(ctx),
        f"{RTL}/{PARAMS}": env.get_template("fpgaq_params.vh.j2").render(ctx),
        f"{RTL}/{MODES}": env.get_template("fpgaq_modes.vh.j2").render(ctx),
        f"{RTL}/files.f": env.get_template("files.f.j2").render(
            sources=[p.split("/", 1)[1] for p in core_sources(top)]),
    }
    for name in PRIMITIVES + WRAPPERS:
        files[f"{RTL}/{name}"] = (ip_dir() / name).read_text()
    return files


def render_stream_project(graph: Graph, config: BuildConfig) -> dict[str, str]:
    """{relative path: text} of an io_stream design's files: the streaming top and the stages'
    datapaths in one file, the primitives beside it (no io_parallel integration wrappers: their
    ports are a whole input a cycle)."""
    ctx = stream_context(graph, config)
    env = templates.environment("verilog")
    top = ctx["top"]
    files = {
        f"{RTL}/{top}.v": env.get_template("stream_top.v.j2").render(ctx),
        f"{RTL}/{MODES}": env.get_template("fpgaq_modes.vh.j2").render(ctx),
        f"{RTL}/files.f": env.get_template("files.f.j2").render(
            sources=[p.split("/", 1)[1] for p in core_sources(top, stream=True)]),
    }
    for name in PRIMITIVES + STREAM_PRIMITIVES:
        files[f"{RTL}/{name}"] = (ip_dir() / name).read_text()
    return files
