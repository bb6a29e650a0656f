"""Write a Vitis HLS project from the template context."""
from __future__ import annotations

from ...config import BuildConfig
from ...ir.graph import Graph
from .. import templates
from .context import project_context
from .stream import stream_context

KERNEL_HEADER = "fpgaq_kernels.h"
STREAM_HEADER = "fpgaq_stream.h"


def render_project(graph: Graph, config: BuildConfig) -> dict[str, str]:
    """{relative path: text} of every generated source file."""
    stream = config.io == "io_stream"
    ctx = stream_context(graph, config) if stream else project_context(graph, config)
    env = templates.environment("hls")
    top = ctx["top"]
    style = "_stream" if stream else ""
    files = {
        f"firmware/{top}.h": env.get_template(f"firmware/top{style}.h.j2").render(ctx),
        f"firmware/{top}.cpp": env.get_template(f"firmware/top{style}.cpp.j2").render(ctx),
        "firmware/parameters.h": env.get_template("firmware/parameters.h.j2").render(ctx),
        f"firmware/{KERNEL_HEADER}": (templates.template_dir("hls") / "firmware" / KERNEL_HEADER).read_text(),
        "firmware/fpgaq_modes.h": env.get_template("firmware/fpgaq_modes.h.j2").render(ctx),
        f"tb/{top}_test.cpp": env.get_template("tb/test.cpp.j2").render(ctx),
        "build_prj.tcl": env.get_template("build_prj.tcl.j2").render(ctx),
    }
    if stream:
        files[f"firmware/{STREAM_HEADER}"] = (templates.template_dir("hls") / "firmware" / STREAM_HEADER).read_text()
    return files
