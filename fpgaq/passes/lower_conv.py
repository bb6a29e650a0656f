"""Convolutions become dense layers, so every pass after treats them as any dense layer: its
zero weights cost nothing, its exact widths, its bias, the batch-norm and the quantizer after
it.

- Fully parallel (io_parallel): the dense layer of the unrolled matrix, a column an output
  element, a non-zero an (output, tap) pair that reads the input (padding reads nothing):
  Reshape -> MatMul -> Add (the bias, an output channel's to each of its positions) -> Reshape.
- Streaming (io_stream): the windows (a line buffer), then one dense layer of the kernel's
  weights applied at every output position, channels last, and back to channels first:
  Windows -> MatMul -> Add -> Transpose -> Reshape. The layer's size is its kernel's, whatever
  the image's."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.ops import Add, Constant, Conv, MatMul, Reshape, Transpose, Windows
from ..ir.tensor import Factor
from .rewrite import Rewrite

MAX_UNROLLED = 1 << 24        # inputs x outputs of one unrolled convolution


def unrolled(conv: Conv, x_shape: tuple[int, ...], codes: np.ndarray) -> np.ndarray:
    """The (inputs, outputs) matrix of the convolution on flattened tensors."""
    out_shape = conv.out_shape(x_shape, codes.shape)
    nd = len(x_shape) - 1
    matrix = np.zeros((math.prod(x_shape), math.prod(out_shape)), dtype=codes.dtype)
    cig, cog = codes.shape[1], codes.shape[0] // conv.group
    grids = np.meshgrid(*[np.arange(n) for n in out_shape[1:]], indexing="ij")
    for o in range(codes.shape[0]):
        g = o // cog
        for k in itertools.product(*(range(n) for n in codes.shape[2:])):
            q = [grids[i] * conv.strides[i] - conv.pads[i] + k[i] * conv.dilations[i] for i in range(nd)]
            valid = np.logical_and.reduce([(q[i] >= 0) & (q[i] < x_shape[1 + i]) for i in range(nd)])
            out_idx = np.ravel_multi_index((np.full(int(valid.sum()), o),) + tuple(gr[valid] for gr in grids), out_shape)
            for ci in range(cig):
                w = codes[(o, ci) + tuple(k)]
                if w == 0:
                    continue
                in_idx = np.ravel_multi_index((np.full(int(valid.sum()), g * cig + ci),) + tuple(qq[valid] for qq in q),
                                              x_shape)
                matrix[in_idx, out_idx] = w
    return matrix


def kernel_matrix(conv: Conv, codes: np.ndarray) -> np.ndarray:
    """The (taps * C, outputs) matrix of the convolution on a window, rows tap by tap, each the
    C input channels (Windows' order); a group reads only its own channels."""
    co, cig = codes.shape[0], codes.shape[1]
    taps = int(np.prod(codes.shape[2:], dtype=np.int64))
    channels = cig * conv.group
    matrix = np.zeros((taps, channels, co), dtype=codes.dtype)
    per_tap = codes.reshape(co, cig, taps)                  # (o, ci, t)
    cog = co // conv.group
    for g in range(conv.group):
        o = slice(g * cog, (g + 1) * cog)
        matrix[:, g * cig:(g + 1) * cig, o] = per_tap[o].transpose(2, 1, 0)
    return matrix.reshape(taps * channels, co)


@dataclass(frozen=True)
class LowerConv:
    stream: bool = False
    name: str = "lower_conv"

    def run(self, graph: Graph) -> Graph:
        if not any(isinstance(n.op, Conv) for n in graph.nodes):
            return graph
        r = Rewrite(graph)
        for n in graph.nodes:
            if isinstance(n.op, Conv):
                (self._windows if self.stream else self._lower)(r, n, n.op)
            else:
                r.keep(n)
        return r.graph()

    def _lower(self, r: Rewrite, n: Node, conv: Conv) -> None:
        ins = [r[i].out for i in n.inputs]
        x = ins[0]
        codes, frac, rows = conv.parts(ins)
        out_shape = conv.out_shape(x.shape, codes.shape)
        positions = math.prod(out_shape[1:])
        if x.size * math.prod(out_shape) > MAX_UNROLLED:
            r.problem(n, f"a convolution of {x.size} inputs and {math.prod(out_shape)} outputs is too large to unroll "
                         "(io_parallel); build it with --io io_stream (line buffers: the kernel once a pixel)")
            return
        matrix = unrolled(conv, x.shape, np.asarray(codes))
        factor = None if rows is None else Factor.of(np.repeat(rows, positions))
        flat = r.add(r.fresh(f"{n.name}_in"), Reshape((x.size,)), n.inputs[:1], n.origin)
        wn = r.add(r.fresh(f"{n.name}_w"), Constant.codes(matrix, frac, factor), (), n.origin)
        counts = MatMul(int(np.asarray(codes).size), int(np.count_nonzero(codes)))   # the report's
        mm = r.add(r.fresh(f"{n.name}_mm"), counts, (flat.name, wn.name), n.origin)
        last = mm.name
        if len(n.inputs) == 3:
            b = ins[2]
            assert b.value is not None
            values = np.repeat(np.ravel(b.value), positions)
            bc = Constant(values) if b.type is None else Constant.codes(values, b.type.frac)
            bn = r.add(r.fresh(f"{n.name}_b"), bc, (), n.origin)
            last = r.add(r.fresh(f"{n.name}_add"), Add(), (mm.name, bn.name), n.origin).name
        r.add(n.name, Reshape(out_shape), (last,), n.origin)

    def _windows(self, r: Rewrite, n: Node, conv: Conv) -> None:
        ins = [r[i].out for i in n.inputs]
        x = ins[0]
        codes, frac, rows = conv.parts(ins)
        out_shape = conv.out_shape(x.shape, codes.shape)
        win = Windows(tuple(codes.shape[2:]), conv.strides, conv.pads, conv.dilations)
        wn = r.add(r.fresh(f"{n.name}_windows"), win, n.inputs[:1], n.origin)
        factor = None if rows is None else Factor.of(rows[None, :])
        matrix = kernel_matrix(conv, np.asarray(codes))
        cn = r.add(r.fresh(f"{n.name}_w"), Constant.codes(matrix, frac, factor), (), n.origin)
        counts = MatMul(int(np.asarray(codes).size), int(np.count_nonzero(codes)))
        last = r.add(r.fresh(f"{n.name}_mm"), counts, (wn.name, cn.name), n.origin).name
        if len(n.inputs) == 3:
            b = ins[2]
            assert b.value is not None
            values = np.ravel(b.value)
            bc = Constant(values) if b.type is None else Constant.codes(values, b.type.frac)
            bn = r.add(r.fresh(f"{n.name}_b"), bc, (), n.origin)
            last = r.add(r.fresh(f"{n.name}_add"), Add(), (last, bn.name), n.origin).name
        first = r.add(r.fresh(f"{n.name}_cf"), Transpose((1, 0)), (last,), n.origin)
        r.add(n.name, Reshape(out_shape), (first.name,), n.origin)
