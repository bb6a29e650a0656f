"""The plan of a streaming (io_stream) design, shared by the back-ends: every tensor a stream of
pixels, each stage of the design what reads and writes them, and the FIFO depths between.

Every tensor flows as a stream of pixels, a pixel a vector of its channels: an image (C, *S)
channels first is prod(S) pixels of C channels in raster order; a vector is one pixel; a
convolution's windows and its dense layer's outputs are channels last. Each layer is a stage
that reads a pixel, computes that pixel's channels, and writes a pixel; windows (convolution,
pooling) come from a line buffer; a reshape that keeps every pixel costs nothing, one that does
not (the Flatten before a dense head) buffers a frame; a stream read twice (a residual) is
cloned. FIFO depths are computed from when each branch first delivers, so a join never stalls
its earlier branch.

The walk is the same for every back-end; what a back-end adds (its type names, its kernel
plans, its stages' delays) comes from the hooks a subclass of StreamPlanner overrides.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import BuildConfig
from ..errors import FpgaqError
from ..ir.fixed import FixedType
from ..ir.graph import Graph, Node
from ..ir.ops import Add, Argmax, Bipolar, Concat, Dense, MaxPool, Requant, Reshape, SoftmaxTable, Transpose, Windows
from ..names import comment

MIN_DEPTH = 2           # a FIFO between stages that run in step
MAP_DELAY = 2           # cycles from reading a pixel to writing its result, a map stage besides its kernel (HLS)


@dataclass(frozen=True)
class Layout:
    """How a tensor's flat (ONNX, row-major) elements sit in its stream: `pixels` vectors of
    `channels`; element (p, c) is flat index p * channels + c (channels last) or
    c * pixels + p (channels first)."""
    pixels: int
    channels: int
    last: bool

    @classmethod
    def natural(cls, shape: tuple[int, ...]) -> Layout:
        """An image channels first; a vector one pixel."""
        if len(shape) <= 1:
            return cls(1, math.prod(shape), True)
        return cls(math.prod(shape[1:]), shape[0], False)

    def flat(self) -> np.ndarray:
        """(pixels, channels): the flat index of each element."""
        p = np.arange(self.pixels)[:, None]
        c = np.arange(self.channels)[None, :]
        return p * self.channels + c if self.last else c * self.pixels + p

    def where(self) -> tuple[np.ndarray, np.ndarray]:
        """(pixel, channel) of each flat index."""
        f = np.arange(self.pixels * self.channels)
        if self.last:
            return f // self.channels, f % self.channels
        return f % self.pixels, f // self.pixels


def _per_pixel(source: np.ndarray, src: Layout, out: Layout) -> np.ndarray | None:
    """For out's channels, the input channel each copies, when every output pixel reads only
    the same pixel of the input (flat index `source[j]` feeds output element j); else None."""
    if src.pixels != out.pixels:
        return None
    sp, sc = src.where()
    wanted = source[out.flat()]                 # (pixels, channels): the input flat index
    if not np.array_equal(sp[wanted], np.broadcast_to(np.arange(out.pixels)[:, None], wanted.shape)):
        return None
    channels = sc[wanted]
    return channels[0] if np.all(channels == channels[:1]) else None


class StreamPlanner:
    """Walks the graph once, in order, and lays out its stages and streams. A back-end's
    subclass says how a type is written, what a stage's kernel plan is, and how long a stage
    takes (the hooks below); the walk, the layouts and the FIFO depths are shared."""

    backend = "this"                # the back-end's name, in messages
    frame_cap = True                # a join's FIFO holds at most a frame (else: all that arrives while it waits)

    def __init__(self, graph: Graph, config: BuildConfig):
        self.graph, self.config = graph, config
        self.layout: dict[str, Layout] = {}
        self.stream: dict[str, str] = {}        # node -> the stream carrying it
        self.ready: dict[str, int] = {}         # stream -> cycle its first pixel arrives (after the frame starts)
        self.vec: dict[str, str] = {}           # stream -> its vector type
        self.stages: list[dict] = []
        self.layers: list[dict] = []            # kernel plans (parameters.h)
        self.streams: list[dict] = []
        self.types: dict[str, str] = {}         # type name -> the back-end's text of it

    # --- hooks: what a back-end adds ------------------------------------------------------
    def type_text(self, t: FixedType) -> str:
        """How the back-end writes a fixed-point type."""
        return str(t)

    def kernel_plan(self, node: Node, layout: Layout) -> dict:
        """The back-end's plan of node's kernel, computing one pixel of `layout`."""
        return {"name": node.name, "origin": comment(str(node.origin)), "channels": layout.channels}

    def pool_plan(self, node: Node, src: Node, taps: int, out: Layout) -> dict:
        """The back-end's plan of a max over a pooling window's taps (one pixel of `out`)."""
        return {"name": node.name, "kernel": "max_taps", "n": out.channels, "taps": taps,
                "origin": comment(str(node.origin))}

    def windows_extra(self, node: Node, src: Node, pad: int) -> dict:
        """What the back-end adds to a windows stage (padding with code `pad`)."""
        return {}

    def concat_extra(self, node: Node) -> dict:
        """What the back-end adds to a concat stage."""
        return {}

    def map_delay(self, node: Node, dense: bool) -> int:
        """Cycles from reading a pixel to writing its result, a map stage of node."""
        return MAP_DELAY + (self._dense_latency(node) if dense else 0)

    def windows_delay(self, reach: int) -> int:
        """Cycles from a line buffer's first pixel in to its first window out."""
        return reach + MAP_DELAY

    def regroup_delay(self, have: Layout) -> int:
        """Cycles from a frame buffer's first pixel in to its first pixel out."""
        return have.pixels + MAP_DELAY

    def pass_delay(self, node: Node) -> int:
        """Cycles node's stage adds where it only passes pixels on (max over taps, concat)."""
        return MAP_DELAY

    # --- streams -------------------------------------------------------------------------
    def _new_stream(self, name: str, node: Node, layout: Layout, ready: int) -> str:
        assert node.type is not None
        s = f"s_{name}"
        self.vec[s] = f"v_{name}"
        self.types.setdefault(f"t_{node.name}", self.type_text(node.type))
        self.ready[s] = ready
        self.streams.append({"name": s, "vec": f"v_{name}", "type": f"t_{node.name}", "channels": layout.channels,
                             "pixels": layout.pixels, "depth": MIN_DEPTH, "width": node.type.width,
                             "port": False})
        return s

    def _set(self, node: Node, layout: Layout, stream: str) -> None:
        self.layout[node.name], self.stream[node.name] = layout, stream

    def fail(self, node: Node, why: str) -> FpgaqError:
        return FpgaqError(f"{node.origin}: {why}; build it with io: io_parallel")

    # --- the walk ------------------------------------------------------------------------
    def plan(self) -> dict:
        g = self.graph
        edge = g.host | {q.name for q in g.firmware_inputs}
        inputs = []
        for inp in g.inputs:
            q = g.input_quantizer(inp)
            assert q.type is not None
            layout = Layout.natural(q.shape)
            s = self._new_stream(q.name, q, layout, 0)
            self.streams[-1]["port"] = True                  # the top's argument
            self._set(q, layout, s)
            inputs.append({"name": q.name, "stream": s, "vec": self.vec[s], "n": q.size, "type": self.type_text(q.type),
                           "pixels": layout.pixels, "channels": layout.channels, "last": layout.last,
                           "frac": q.type.frac, "width": q.type.width, "signed": q.type.signed,
                           "origin": comment(str(inp.origin))})
        for node in g.nodes:
            if node.inputs and node.name not in edge:
                self._node(node)
        outputs = self._outputs()
        self._clone()
        self._depths()
        return {"inputs": inputs, "outputs": outputs, "stages": self.stages, "layers": self.layers,
                "streams": self.streams, "types": sorted(self.types.items())}

    def _node(self, node: Node) -> None:
        op = node.op
        if isinstance(op, (Reshape, Transpose)):
            self._relabel(node)
        elif isinstance(op, Windows):
            self._windows(node, op, node.name, self._src(node, 0, Layout.natural(self.graph[node.inputs[0]].shape)))
        elif isinstance(op, MaxPool):
            self._max_pool(node, op)
        elif isinstance(op, Concat):
            self._concat(node, op)
        elif isinstance(op, Add) and len(node.inputs) == 2:
            self._map(node, 2)
        elif isinstance(op, Dense):
            self._map(node, 1, dense=True)
        elif op.elementwise or isinstance(op, (SoftmaxTable, Argmax, Requant, Bipolar)):
            self._map(node, 1)
        else:
            raise self.fail(node, f"the {self.backend} back-end has no io_stream stage for {op.kind}")

    def _src(self, node: Node, i: int, want: Layout | None = None) -> str:
        """The stream of node's i-th input, regrouped into `want` where it differs."""
        src = self.graph[node.inputs[i]]
        s, have = self.stream[src.name], self.layout[src.name]
        if want is None or want == have:
            return s
        return self._regroup(src, s, have, want, np.arange(src.size))

    def _regroup(self, src: Node, s: str, have: Layout, want: Layout, source: np.ndarray, node: Node | None = None) -> str:
        """A frame buffer: the whole frame in, then out in `want`'s order (source[j]: the input
        flat index of output element j)."""
        target = node or src
        name = f"{target.name}_frame" if node is None else target.name
        out = self._new_stream(name, target, want, self.ready[s] + self.regroup_delay(have))
        have_flat = have.flat().ravel()
        position = np.empty_like(have_flat)
        position[have_flat] = np.arange(have_flat.size)          # flat index -> position in arrival order
        order = position[source[want.flat().ravel()]]            # for each output element in order: its arrival
        self.stages.append({"kind": "regroup", "name": name, "in": s, "out": out, "in_vec": self.vec[s],
                            "out_vec": self.vec[out], "in_pixels": have.pixels, "in_channels": have.channels,
                            "out_pixels": want.pixels, "out_channels": want.channels, "n": int(have_flat.size),
                            "order": [int(v) for v in order], "type": f"t_{target.name}"})
        return out

    def _relabel(self, node: Node) -> None:
        src = self.graph[node.inputs[0]]
        have = self.layout[src.name]
        op = node.op
        source = np.arange(src.size)
        if isinstance(op, Transpose):
            source = source.reshape(src.shape).transpose(op.perm).ravel()
        candidates = [Layout.natural(node.shape), Layout(math.prod(node.shape[:-1]), node.shape[-1], True)
                      if node.shape else Layout(1, 1, True), Layout(have.pixels, node.size // have.pixels, True),
                      Layout(have.pixels, node.size // have.pixels, False)]
        for lay in candidates:
            if lay.pixels * lay.channels != node.size:
                continue
            channels = _per_pixel(source, have, lay)
            if channels is not None and np.array_equal(channels, np.arange(have.channels)) \
                    and lay.channels == have.channels:
                self._set(node, lay, self.stream[src.name])          # the same stream, read another way
                return
        want = Layout.natural(node.shape)
        self._set(node, want, self._regroup(src, self.stream[src.name], have, want, source, node))

    def _kernel(self, node: Node, layout: Layout) -> dict:
        ctx = self.kernel_plan(node, layout)
        self.layers.append(ctx)
        return ctx

    def _per_channel(self, node: Node, values: list, layout: Layout) -> list:
        """One value a channel, where a value an element repeats at every pixel."""
        if len(values) != layout.pixels * layout.channels:
            raise self.fail(node, f"{len(values)} parameters for {layout.pixels * layout.channels} elements")
        flat = layout.flat()
        first = [values[int(i)] for i in flat[0]]
        for p in range(1, layout.pixels):
            if [values[int(i)] for i in flat[p]] != first:
                raise self.fail(node, "its parameters differ from pixel to pixel, which a stream of pixels "
                                      "cannot apply")
        return first

    def _map(self, node: Node, n_inputs: int, dense: bool = False) -> None:
        src = self.graph[node.inputs[0]]
        have = self.layout[src.name]
        if dense or isinstance(node.op, (SoftmaxTable, Argmax)):
            # rows of the last axis, one a pixel
            have = Layout(math.prod(src.shape[:-1]), src.shape[-1] if src.shape else 1, True)
            out = Layout(have.pixels, node.size // have.pixels, True)
        else:
            out = have
        ins = [self._src(node, 0, have)]
        if n_inputs == 2:
            other = self.graph[node.inputs[1]]
            if self.layout[other.name] != have:
                ins.append(self._src(node, 1, have))
            else:
                ins.append(self.stream[other.name])
        ctx = self._kernel(node, out)
        delay = self.map_delay(node, dense)
        s = self._new_stream(node.name, node, out, max(self.ready[i] for i in ins) + delay)
        reuse = node.op.reuse if isinstance(node.op, Dense) else 1
        self.stages.append({"kind": "map", "name": node.name, "ins": ins, "out": s, "pixels": out.pixels,
                            "in_vecs": [self.vec[i] for i in ins], "out_vec": self.vec[s], "layer": ctx,
                            "ii": reuse, "origin": ctx["origin"]})
        self._set(node, out, s)

    def _dense_latency(self, node: Node) -> int:
        cost = node.op.cost([self.graph[i].out for i in node.inputs], node.out, self.config.clock_ns)
        return cost.latency_cycles

    def _windows(self, node: Node, op: Windows, name: str, s: str, pad_code: int | None = None) -> str:
        src = self.graph[node.inputs[0]]
        assert src.type is not None
        spatial = src.shape[1:]
        nd = len(spatial)
        padded = op.padded(spatial)
        strides = [math.prod(padded[i + 1:]) for i in range(nd)]
        reach = op.reach(spatial)
        offsets = []
        for k in np.ndindex(*op.kernel):
            back = sum((op.kernel[i] - 1 - k[i]) * op.dilations[i] * strides[i] for i in range(nd))
            offsets.append(reach - 1 - back)
        channels = src.shape[0]
        out_layout = Layout(math.prod(op.spatial_out(spatial)), op.taps * channels, True)
        pad = op.pad_code if pad_code is None else pad_code
        target = node if pad_code is None else src
        vec = f"v_{name}"
        out = f"s_{name}"
        self.vec[out] = vec
        self.types.setdefault(f"t_{target.name}", self.type_text(src.type))
        self.ready[out] = self.ready[s] + self.windows_delay(reach)
        self.streams.append({"name": out, "vec": vec, "type": f"t_{target.name}", "channels": out_layout.channels,
                             "pixels": out_layout.pixels, "depth": MIN_DEPTH, "width": src.type.width,
                             "port": False})
        self.stages.append({
            "kind": "windows", "name": name, "in": s, "out": out, "in_vec": self.vec[s], "out_vec": vec,
            "type": f"t_{src.name}", "rank": nd, "channels": channels, "taps": op.taps, "reach": reach,
            "padded_pixels": math.prod(padded), "pad_code": pad, **self.windows_extra(node, src, pad),
            "geometry": [list(padded), [op.pads[i] for i in range(nd)],
                         [op.pads[i] + spatial[i] for i in range(nd)], list(op.kernel), list(op.strides),
                         list(op.dilations), list(op.spatial_out(spatial))],
            "offsets": offsets, "line_buffer_bits": reach * channels * src.type.width})
        if pad_code is None:
            self._set(node, out_layout, out)
        return out

    def _max_pool(self, node: Node, op: MaxPool) -> None:
        """Windows padded with the input's smallest code (padding never wins), then the largest
        tap of each channel."""
        src = self.graph[node.inputs[0]]
        assert src.interval is not None and node.type is not None and src.type is not None
        win = Windows(op.kernel, op.strides, op.pads, op.dilations)
        s = self._windows(node, win, f"{node.name}_windows", self._src(node, 0, Layout.natural(src.shape)),
                          pad_code=src.interval.lo)
        out = Layout.natural(node.shape)
        ctx = self.pool_plan(node, src, win.taps, out)
        self.layers.append(ctx)
        o = self._new_stream(node.name, node, out, self.ready[s] + self.pass_delay(node))
        self.stages.append({"kind": "map", "name": node.name, "ins": [s], "out": o, "pixels": out.pixels,
                            "in_vecs": [self.vec[s]], "out_vec": self.vec[o], "layer": ctx, "ii": 1,
                            "origin": ctx["origin"]})
        self._set(node, out, o)

    def _concat(self, node: Node, op: Concat) -> None:
        assert node.type is not None
        srcs = [self.graph[i] for i in node.inputs]
        lays = [self.layout[s.name] for s in srcs]
        out = Layout(lays[0].pixels, node.size // lays[0].pixels, lays[0].last) if lays[0].pixels > 1 \
            else Layout.natural(node.shape)
        sources = op.sources([s.out for s in srcs])            # (input, flat index) of each output element
        where = [lay.where() for lay in lays]
        picks: list[tuple[int, int]] = []                     # per output channel: (input, its channel)
        for p, row in enumerate(out.flat()):                  # every pixel joins its inputs' same pixel
            for c, f in enumerate(row):
                j, k = int(sources[f][0]), int(sources[f][1])
                pick = (j, int(where[j][1][k]))
                if where[j][0][k] != p or (p > 0 and picks[c] != pick):
                    raise self.fail(node, "it joins tensors along an axis that is not their channels")
                if p == 0:
                    picks.append(pick)
        fracs = [s.type.frac for s in srcs if s.type is not None]
        elements = [{"input": j, "index": k, "shift": node.type.frac - fracs[j]} for j, k in picks]
        ins = [self.stream[s.name] for s in srcs]
        s = self._new_stream(node.name, node, out, max(self.ready[i] for i in ins) + self.pass_delay(node))
        self.stages.append({"kind": "concat", "name": node.name, "ins": ins, "out": s, "pixels": out.pixels,
                            "in_vecs": [self.vec[i] for i in ins], "out_vec": self.vec[s], "elements": elements,
                            **self.concat_extra(node), "origin": comment(str(node.origin))})
        self._set(node, out, s)

    # --- ports, fan-out and FIFO depths ---------------------------------------------------
    def _outputs(self) -> list[dict]:
        """A port is written by the stage that makes its stream, where nothing else reads it;
        else (a model output read further, an input, a second port) by a copy stage."""
        outputs, used = [], set()
        for i, name in enumerate(self.graph.outputs):
            node = self.graph[name]
            assert node.type is not None
            lay, s, port = self.layout[name], self.stream[name], f"out{i}_{name}"
            self.types.setdefault(f"t_{name}", self.type_text(node.type))
            producer = [st for st in self.stages if st["out"] == s]
            if producer and not self._readers(s) and s not in used:
                producer[0]["out"] = port
                next(x for x in self.streams if x["name"] == s)["port"] = True     # typed, not declared
            else:
                self.stages.append({"kind": "copy", "name": f"{port}_copy", "in": s, "out": port,
                                    "in_vec": self.vec[s], "out_vec": self.vec[s], "pixels": lay.pixels})
            used.add(s)
            outputs.append({"name": name, "port": port, "vec": self.vec[s], "n": node.size,
                            "type": f"t_{name}", "pixels": lay.pixels, "channels": lay.channels,
                            "last": lay.last, "frac": node.type.frac, "width": node.type.width,
                            "signed": node.type.signed})
        return outputs

    def _readers(self, s: str) -> list[dict]:
        return [st for st in self.stages if s in st.get("ins", []) or st.get("in") == s]

    def _clone(self) -> None:
        """A stream read by several stages: a clone stage writes a copy for each."""
        for info in list(self.streams):
            s = info["name"]
            readers = self._readers(s)
            if len(readers) < 2:
                continue
            copies = []
            for k, st in enumerate(readers):
                c = f"{s}_c{k}"
                copies.append(c)
                self.streams.append({**info, "name": c, "port": False})
                self.ready[c] = self.ready[s] + 1
                if st.get("in") == s:
                    st["in"] = c
                else:
                    st["ins"] = [c if i == s else i for i in st["ins"]]
            at = next((i for i, st in enumerate(self.stages) if st["out"] == s), -1) + 1
            self.stages.insert(at, {"kind": "clone", "name": f"{s}_clone", "in": s, "outs": copies,
                                    "vec": info["vec"], "pixels": info["pixels"], "out": None})

    def _depths(self) -> None:
        """A stream into a join (a stage of several inputs) waits for the join's last input:
        it holds the pixels that arrive meanwhile, one a cycle at most, up to a frame."""
        info = {x["name"]: x for x in self.streams}
        for st in self.stages:
            ins = st.get("ins", [])
            if len(ins) < 2:
                continue
            last = max(self.ready.get(i, 0) for i in ins)
            for i in ins:
                if i in info:
                    wait = last - self.ready.get(i, 0)
                    held = min(info[i]["pixels"], wait) if self.frame_cap else wait
                    info[i]["depth"] = max(info[i]["depth"], held + MIN_DEPTH)
