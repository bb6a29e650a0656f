"""io_stream in Verilog: the stream plan (backends/stream_plan.py) as a pipeline of stages joined
by FIFOs, one pixel a cycle at most through each stage.

Every stream of the plan is a FIFO (ip/fpgaq_fifo.v) with credits: a stage starts a pixel when
each of its inputs holds one and each of its outputs has a place for the result, which it
reserves then, so that its pipeline never stalls. The stages:
- map: a layer on one pixel's channels, the same netlist as io_parallel's (the constant
  products of a dense layer in CSD shift-and-add trees, the requantisers, the tables), built
  by context.py's kernels on a pixel; a convolution is the dense layer of its kernel applied to
  each window; a max pool the largest tap of each channel;
- windows: a line buffer (ip/fpgaq_windows.v) walking the padded image;
- regroup: a frame buffer (ip/fpgaq_regroup.v), the Flatten before a dense head;
- clone, copy: a pixel to several streams (a residual's two branches), or to a port.
The input port is a FIFO's write side (in_valid, in_ready), an output port a FIFO's read side
(out_valid, out_ready, out_last on a frame's last pixel).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ...config import BuildConfig
from ...ir.cost import adder_budget
from ...ir.fixed import FixedType, Rounding
from ...ir.graph import Graph, Node
from ...ir.interval import Interval
from ...ir.ops import Argmax, ChannelQuant, Dense, LeakyRelu, Op, Requant, SoftmaxTable, Threshold
from ...ir.tensor import Tensor
from ...names import comment
from ..stream_plan import MIN_DEPTH, Layout, StreamPlanner
from .context import (KERNELS, MULTI, Netlist, Value, _max_tree, _requant, adder_bits, literal, multiplier_dsps,
                      state_bits)

# per-element parameters of a kernel, reduced to one a channel for a pixel
PER_ELEMENT: dict[type, tuple[str, ...]] = {Requant: ("multiplier", "ratio", "offset"), LeakyRelu: ("slope",),
                                            ChannelQuant: ("fracs", "lo", "hi"), Threshold: ("thresholds", "start")}
ROWS = (Dense, SoftmaxTable, Argmax)        # kernels on rows of the last axis: a row is a pixel
PORT_DELAY = 1                              # a FIFO: pushed in one cycle, read in the next


@dataclasses.dataclass(frozen=True)
class Port:
    """One input of a datapath: its pixel's codes (n of `kind`) and their exact interval."""
    n: int
    kind: FixedType
    iv: Interval


def build_datapath(module: str, budget: float, ports: list[Port], out: FixedType,
                   body: Callable[[Netlist, list[list[Value]]], list[Value]]) -> dict:
    """A pipelined module computing one pixel: its inputs registered, the netlist `body` builds
    on their codes, its outputs resized to `out` and registered. Latency: the netlist's stages
    and the two registers. `ii`: the cycles between pixels, above 1 where a dense layer has a
    reuse factor R > 1; the module then reads `v`, bit k high where a pixel is in stage k."""
    net = Netlist(budget, valids="v")
    net.taken |= {"clk", "rst", "v", "out", "out_q"} | {f"in{k}" for k in range(len(ports))} | \
        {f"in{k}_q" for k in range(len(ports))}
    xs = []
    for k, p in enumerate(ports):
        row = []
        for i in range(p.n):
            v = net.new(f"x{k}_{i}", p.iv, 0, 0.0)
            v.kind = p.kind
            net.wires[-1].update(width=p.kind.width, source=f"in{k}_q[{(i + 1) * p.kind.width - 1}:{i * p.kind.width}]")
            row.append(v)
        xs.append(row)
    ys = body(net, xs)
    last = max((v.stage for v in ys if v.const is None), default=0)
    assigns = [{"lsb": i * out.width, "msb": (i + 1) * out.width - 1, "width": out.width, "source": net.at(v, last),
                "ws": v.width, "ss": int(v.signed), "name": f"Y_{i}"} for i, v in enumerate(ys)]
    return {"module": module, "inputs": [{"name": f"in{k}", "bits": p.n * p.kind.width} for k, p in enumerate(ports)],
            "out_bits": len(ys) * out.width, "wires": net.wires, "instances": net.instances,
            "registers": net.registers(), "assigns": assigns, "latency": last + 2, "adders": net.adders,
            "adder_bits": adder_bits(net.instances), "stages": last + 1, "ii": net.ii,
            "ii_bits": max(1, (net.ii - 1).bit_length()), "state_bits": state_bits(net.instances),
            "multipliers": net.multipliers, "dsp": multiplier_dsps(net.instances)}


def datapath_bits(d: dict) -> int:
    """Flip-flops of a datapath: its input, delay and output registers, and those of its
    layers with reuse factors above 1 (held inputs, accumulators, phase)."""
    return sum(i["bits"] for i in d["inputs"]) + sum(r["width"] * len(r["taps"]) for r in d["registers"]) \
        + d["out_bits"] + d["state_bits"]


class VerilogPlanner(StreamPlanner):
    """The stream plan of a Verilog design: each map stage's datapath built on a pixel, and the
    stages' delays in this design's cycles."""

    backend = "Verilog"
    frame_cap = False       # a join's FIFO holds what arrives while it waits: the II stays the slowest stage's

    def __init__(self, graph: Graph, config: BuildConfig):
        super().__init__(graph, config)
        self.budget = adder_budget(config.clock_ns)
        self.datapaths: dict[str, dict] = {}        # stage (node) name -> its datapath

    # --- hooks ---------------------------------------------------------------------------
    def kernel_plan(self, node: Node, layout: Layout) -> dict:
        srcs = [self.graph[i] for i in node.inputs]
        cin = (srcs[0].shape[-1] if srcs[0].shape else 1) if isinstance(node.op, ROWS) else layout.channels
        assert node.type is not None
        pixel = Node(node.name, self._pixel_op(node, layout), node.inputs,
                     Tensor((layout.channels,), node.type, node.interval), node.origin)
        psrcs = [Node(s.name, s.op, s.inputs, Tensor((cin,), s.type, s.interval), s.origin) for s in srcs]
        ports = [self._port(s, cin) for s in srcs]

        def body(net: Netlist, xs: list[list[Value]]) -> list[Value]:
            if type(node.op) in MULTI and len(node.inputs) > 1:
                return MULTI[type(node.op)](net, pixel, psrcs, xs)
            return KERNELS[type(node.op)](net, pixel, psrcs[0], xs[0])
        return self._datapath(node, ports, node.type, body)

    def pool_plan(self, node: Node, src: Node, taps: int, out: Layout) -> dict:
        assert node.type is not None and src.interval is not None
        port = self._port(src, taps * out.channels)

        def body(net: Netlist, xs: list[list[Value]]) -> list[Value]:
            return [_max_tree(net, f"{node.name}_{c}", [xs[0][t * out.channels + c] for t in range(taps)])
                    for c in range(out.channels)]
        return self._datapath(node, [port], node.type, body)

    def map_delay(self, node: Node, dense: bool) -> int:
        return self.datapaths[node.name]["latency"] + PORT_DELAY

    def windows_delay(self, reach: int) -> int:
        return reach + 1 + PORT_DELAY

    def regroup_delay(self, have: Layout) -> int:
        return have.pixels + 1 + PORT_DELAY

    def pass_delay(self, node: Node) -> int:
        d = self.datapaths.get(node.name)
        return (d["latency"] if d else 2) + PORT_DELAY

    # --- datapaths -----------------------------------------------------------------------
    def _port(self, src: Node, n: int) -> Port:
        assert src.type is not None and src.interval is not None
        return Port(n, src.type, src.interval)

    def _datapath(self, node: Node, ports: list[Port], out: FixedType, body) -> dict:
        d = build_datapath(f"{self.config.name}_{node.name}", self.budget, ports, out, body)
        self.datapaths[node.name] = d
        return {"name": node.name, "origin": comment(str(node.origin)), "datapath": d}

    def _pixel_op(self, node: Node, layout: Layout) -> Op:
        """node's op on one pixel: its per-element parameters one a channel, where they repeat
        at every pixel (else the node is refused)."""
        op = node.op
        changes = {}
        for name in PER_ELEMENT.get(type(op), ()):
            values = getattr(op, name)
            if values is None or len(values) <= 1 or layout.pixels == 1:
                continue
            if len(values) != layout.pixels * layout.channels:
                raise self.fail(node, f"{len(values)} parameters for {layout.pixels * layout.channels} elements")
            rows = np.asarray(values)[layout.flat()]
            if not np.all(rows == rows[:1]):
                raise self.fail(node, "its parameters differ from pixel to pixel, which a stream of pixels "
                                      "cannot apply")
            changes[name] = rows[0]
        return dataclasses.replace(op, **changes) if changes else op  # type: ignore[type-var]

    def concat_datapath(self, stage: dict) -> dict:
        """A concat: each output channel one input's, shifted onto the output's grid (wiring)."""
        node = self.graph[stage["name"]]
        assert node.type is not None
        srcs = [self.graph[i] for i in node.inputs]
        lays = [self.layout[s.name] for s in srcs]
        ports = [self._port(s, lay.channels) for s, lay in zip(srcs, lays)]

        def body(net: Netlist, xs: list[list[Value]]) -> list[Value]:
            return [_requant(net, node, f"{node.name}_{c}", xs[e["input"]][e["index"]], -e["shift"],
                             Rounding.FLOOR, None, None) for c, e in enumerate(stage["elements"])]
        return self._datapath(node, ports, node.type, body)["datapath"]


# --- the top: FIFOs and stage controls ------------------------------------------------------

def _stream_kinds(planner: VerilogPlanner) -> dict[str, FixedType]:
    """The type of every stream's codes: its node's (t_NAME), where it holds the codes; a
    window's padding code widens it where it does not."""
    kinds = {}
    for s in planner.streams:
        node = planner.graph[s["type"][2:]]
        assert node.type is not None and node.interval is not None
        holds = node.type.min_code <= node.interval.lo and node.interval.hi <= node.type.max_code
        kinds[s["name"]] = node.type if holds else FixedType.holding(node.interval, node.type.frac)
    return kinds


def _mask(bits: list[bool]) -> str:
    return f"{len(bits)}'b" + "".join("1" if b else "0" for b in reversed(bits))


def _packed32(values: list[int]) -> str:
    return f"{32 * len(values)}'h{sum((int(v) & 0xFFFFFFFF) << (32 * k) for k, v in enumerate(values)):x}"


def _windows_params(st: dict, width: int) -> dict:
    """fpgaq_windows' parameters: the padded walk's per-axis masks (where a position is real,
    where a window ends), three axes, the leading ones of size 1 for a smaller rank."""
    padded, first, end, kernel, stride, dilation, out = st["geometry"]
    axes = []
    for d in range(st["rank"]):
        real = [first[d] <= q < end[d] for q in range(padded[d])]
        last = []
        for q in range(padded[d]):
            s = q - (kernel[d] - 1) * dilation[d]
            last.append(s >= 0 and s % stride[d] == 0 and s // stride[d] < out[d])
        axes.append((padded[d], real, last))
    axes = [(1, [True], [True])] * (3 - len(axes)) + axes
    if len(axes) > 3:
        raise AssertionError("more than 3 spatial axes")
    params: dict = {"C": st["channels"], "W": width, "TAPS": st["taps"], "REACH": st["reach"]}
    for d, (n, _, _) in enumerate(axes):
        params[f"N{d}"] = n
    for d, (_, real, _) in enumerate(axes):
        params[f"IN{d}"] = _mask(real)
    for d, (_, _, last) in enumerate(axes):
        params[f"LAST{d}"] = _mask(last)
    params["OFFSETS"] = _packed32(st["offsets"])
    params["PAD"] = literal(st["pad_code"], width)
    return params


def stream_context(graph: Graph, config: BuildConfig) -> dict:
    """Everything the streaming top's template needs, as plain data."""
    planner = VerilogPlanner(graph, config)
    plan = planner.plan()
    kinds = _stream_kinds(planner)
    fifos: dict[str, dict] = {}
    for s in plan["streams"]:
        if s["port"] and s["name"] != plan["inputs"][0]["stream"]:
            continue                            # an output's stream: its port's FIFO below
        k = kinds[s["name"]]
        fifos[s["name"]] = {"name": s["name"], "width": s["channels"] * k.width, "elem": k.width,
                            "channels": s["channels"], "pixels": s["pixels"], "plan_depth": s["depth"],
                            "producer": None, "consumer": None, "latency": 0}
    ports_out = []
    for i, o in enumerate(plan["outputs"]):       # an output port: its stream's FIFO, read by the port
        prefix = "out" if len(plan["outputs"]) == 1 else f"out{i}"
        node = graph[o["name"]]
        assert node.type is not None
        width = o["channels"] * node.type.width
        fifos[o["port"]] = {"name": o["port"], "width": width, "elem": node.type.width, "channels": o["channels"],
                            "pixels": o["pixels"], "plan_depth": MIN_DEPTH, "producer": None,
                            "consumer": f"port {prefix}", "latency": 0}
        ports_out.append({**o, "prefix": prefix, "fifo": o["port"], "bits": width,
                          "count_bits": max(1, (o["pixels"] - 1).bit_length()),
                          "flat": Layout(o["pixels"], o["channels"], o["last"]).flat().tolist()})
    stages = []
    for st in plan["stages"]:
        stages.append(_stage(planner, st, fifos, kinds))
    for f in fifos.values():
        f["depth"] = f["plan_depth"] + f["latency"] + 1
    inp = plan["inputs"][0]
    in_fifo = inp["stream"]
    fifos[in_fifo]["producer"] = "port in"
    in_kind = kinds[in_fifo]
    top = config.name
    datapaths = [s["datapath"] for s in stages if "datapath" in s]
    return {
        "top": top, "model": comment(graph.name), "clock_ns": config.clock_ns, "budget": planner.budget,
        "fifos": list(fifos.values()), "stages": stages, "datapaths": datapaths,
        "input": {**inp, "fifo": in_fifo, "bits": inp["channels"] * in_kind.width, "elem": in_kind.width,
                  "flat": Layout(inp["pixels"], inp["channels"], inp["last"]).flat().tolist()},
        "outputs": ports_out, "plan": plan, "planner": planner,
        "roundings": [{"name": r.name, "value": r.value} for r in Rounding],
    }


def _connect(fifos: dict[str, dict], name: str, stage: str, latency: int) -> None:
    fifos[name]["producer"] = stage
    fifos[name]["latency"] = latency


def _stage(planner: VerilogPlanner, st: dict, fifos: dict[str, dict], kinds: dict[str, FixedType]) -> dict:
    """One stage's control: the FIFOs it reads and writes, and how long it takes."""
    kind, name = st["kind"], st["name"]
    ins = st.get("ins") or [st["in"]]
    outs = st["outs"] if kind == "clone" else [st["out"]]
    for s in ins:
        fifos[s]["consumer"] = name
    out = {"kind": kind, "name": name, "ins": ins, "outs": outs, "origin": st.get("origin", ""),
           "fire": " && ".join([f"{s}_valid" for s in ins] + [f"{s}_ok" for s in outs])}
    if kind in ("map", "concat"):
        d = st["layer"]["datapath"] if kind == "map" else planner.concat_datapath(st)
        for s, port in zip(ins, d["inputs"]):
            assert fifos[s]["width"] == port["bits"], (name, s, fifos[s]["width"], port["bits"])
        # reuse R > 1: a pixel every R cycles, counted by a gap counter that gates the fire
        out.update(datapath=d, latency=d["latency"], pixels=st["pixels"] * d["ii"], ii=d["ii"])
        if d["ii"] > 1:
            out["fire"] += f" && st_{name}_ready"
    elif kind == "windows":
        a, b = kinds[st["in"]], kinds[st["out"]]
        if (a.width, a.signed) != (b.width, b.signed):
            raise planner.fail(planner.graph[st["name"]], f"its padding code {st['pad_code']} is not a code of "
                                                          f"its input's type {a}")
        out.update(params=_windows_params(st, a.width), latency=1, pixels=st["padded_pixels"],
                   bits=st["reach"] * st["channels"] * a.width)
    elif kind == "regroup":
        w = kinds[st["in"]].width
        out.update(params={"W": w, "IN_P": st["in_pixels"], "IN_C": st["in_channels"], "OUT_P": st["out_pixels"],
                           "OUT_C": st["out_channels"], "ORDER": _packed32(st["order"])},
                   latency=1, pixels=st["in_pixels"] + st["out_pixels"] - 1, bits=st["n"] * w)
    else:                                       # clone, copy: a register
        out.update(latency=1, pixels=st["pixels"], bits=fifos[ins[0]]["width"])
    for s in outs:
        _connect(fifos, s, name, out["latency"])
    return out


def stream_ports(graph: Graph, config: BuildConfig) -> dict:
    """The ports of an io_stream design as the test bench drives them: for each, its pixels a
    frame, their codes, and for pixel p, channel c, the code's flat (ONNX) index in the frame;
    `cycles`: the slowest stage's cycles a frame."""
    ctx = stream_context(graph, config)
    i = ctx["input"]
    inp = {"pixels": i["pixels"], "channels": i["channels"], "width": i["elem"], "signed": i["signed"],
           "flat": i["flat"]}
    outs = [{"prefix": o["prefix"], "pixels": o["pixels"], "channels": o["channels"], "width": o["width"],
             "signed": o["signed"], "flat": o["flat"]} for o in ctx["outputs"]]
    return {"input": inp, "outputs": outs, "cycles": max(s["pixels"] for s in ctx["stages"])}
