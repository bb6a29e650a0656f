"""Latency and resource model of the generated firmware, per layer and in total.

A model, not a synthesis result: its constants are stated here and explained in the README.
Latency of a dense layer = multiplier stages + adder-tree stages + one output register, plus
R - 1 cycles when R products share a multiplier; the adder tree packs as many adder levels
into a cycle as the clock period allows for the accumulator's width.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .config import BuildConfig
from .ir.fixed import FixedType, csd
from .ir.graph import Graph, Node
from .ir.ops import Dense, Input, Quant, Requant

# DSP48E2: a 27 x 18 signed multiplier.
DSP_A, DSP_B = 27, 18
# Products at least this wide (sum of operand widths) go to DSPs, narrower ones to LUTs; a
# constant weight with at most CONST_SHIFT_ADD_DIGITS canonical signed digits is a shift-and-add.
DSP_MIN_PRODUCT_BITS = 16
CONST_SHIFT_ADD_DIGITS = 2
DSP_STAGES = 3          # DSP48E2 with A/B, M and P registers
LUT_MULT_STAGES = 1
# Carry-chain adder delay: routing and LUT, plus a carry per 8 bits (CARRY8), in ns.
ADDER_BASE_NS = 0.75
ADDER_PER_BIT_NS = 0.02
CLOCK_MARGIN = 0.8      # the share of the period the logic may use (clock skew, set-up)
BRAM_BITS = 18 * 1024
LUTRAM_MAX_BITS = 4096  # shared weights up to this many bits stay in LUT RAM


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    onnx_node: str
    weights: int
    nonzero: int
    multipliers: int
    reuse: int
    accumulator: dict
    latency_cycles: int
    ii: int
    dsp: int
    lut: int
    ff: int
    bram: int
    adder_depth: int
    accumulator_bits: int


def adders_per_cycle(width: int, clock_ns: float) -> int:
    return max(1, math.floor(clock_ns * CLOCK_MARGIN / (ADDER_BASE_NS + ADDER_PER_BIT_NS * width)))


def csd_digits(v: int) -> int:
    """Non-zero canonical signed digits of v: the adds a constant multiplication costs, plus one."""
    return len(csd(int(v)))


def neuron_accumulator_bits(node: Node) -> int:
    """Sum over the layer's neurons of the smallest accumulator width each one needs."""
    return sum(FixedType.holding(iv, node.type.frac).width for iv in node.typed.channels)


def _product_dsps(a: int, b: int) -> int:
    a, b = max(a, b), min(a, b)
    return math.ceil(a / DSP_A) * math.ceil(b / DSP_B)


def dense_estimate(node: Node, x_type: FixedType, clock_ns: float) -> LayerEstimate:
    op: Dense = node.op
    w = op.weight
    nz = int(np.count_nonzero(w))
    reuse = max(1, op.reuse)
    mults = math.ceil(nz / reuse)
    xbits = x_type.width + (0 if x_type.signed else 1)
    wbits = max((abs(int(v)).bit_length() for v in w[w != 0]), default=1) + 1
    acc = node.type
    per_row = np.count_nonzero(w, axis=1)
    terms = int(per_row.max(initial=0)) + 1                     # products and the bias
    depth = math.ceil(math.log2(terms)) if terms > 1 else 0
    levels = adders_per_cycle(acc.width, clock_ns)
    shared = reuse > 1
    wide = wbits + xbits >= DSP_MIN_PRODUCT_BITS
    nonzero_w = [int(v) for v in w[w != 0]]
    if shared:
        dsp_products = mults if wide else 0
    else:
        dsp_products = sum(1 for v in nonzero_w if wide and csd_digits(v) > CONST_SHIFT_ADD_DIGITS)
    on_dsp = dsp_products > 0
    mult_stages = DSP_STAGES if on_dsp else LUT_MULT_STAGES
    latency = mult_stages + math.ceil(depth / levels) + 1 + (reuse - 1)
    dsp = dsp_products * _product_dsps(wbits, xbits)
    if not shared:
        # constant shift-and-add: one adder of about the product's width per extra CSD digit
        lut_w = [v for v in nonzero_w if not (wide and csd_digits(v) > CONST_SHIFT_ADD_DIGITS)]
        mult_lut = sum((csd_digits(v) - 1) * (xbits + abs(v).bit_length()) for v in lut_w)
    elif not on_dsp:
        mult_lut = mults * (wbits * xbits) // 2
    else:
        mult_lut = 0
    # accumulation: one adder a non-zero product (the bias is folded into the first add)
    add_lut = nz * acc.width if not shared else mults * acc.width + acc.width * node.features
    stages = math.ceil(depth / levels) + 1
    ff = node.features * acc.width * stages + (mults * (wbits + xbits) if shared else 0)
    weight_bits = nz * wbits
    bram = math.ceil(weight_bits / BRAM_BITS) if shared and weight_bits > LUTRAM_MAX_BITS else 0
    lut = mult_lut + add_lut + (math.ceil(weight_bits / 64) if shared and not bram else 0)
    return LayerEstimate(
        name=node.name, onnx_node=node.origin.onnx_name, weights=op.model_weights, nonzero=nz,
        multipliers=mults, reuse=reuse,
        accumulator={"signed": acc.signed, "width": acc.width, "frac": acc.frac},
        latency_cycles=latency, ii=reuse, dsp=dsp, lut=int(lut), ff=int(ff), bram=bram,
        adder_depth=depth, accumulator_bits=neuron_accumulator_bits(node))


def estimate(graph: Graph, config: BuildConfig) -> dict:
    """Per-layer and total estimates as plain data (the JSON of `fpgaq report --json`)."""
    layers = []
    extra_lut = extra_ff = 0
    for node in graph.nodes:
        if isinstance(node.op, Dense):
            layers.append(dense_estimate(node, graph[node.inputs[0]].type, config.clock_ns))
        elif not isinstance(node.op, Input) and graph[node.inputs[0]].type is not None:
            # element-wise ops fold into the layer's output stage: a comparator or a rounding
            # adder and a saturation mux a value
            w = node.type.width
            extra_lut += node.features * (w if isinstance(node.op, Quant) else max(1, w // 2))
            if isinstance(node.op, Requant):   # a constant multiplier a channel: shift-and-add
                x = graph[node.inputs[0]].type.width
                extra_lut += sum((csd_digits(int(m)) - 1) * (x + int(m).bit_length())
                                 for m in node.op.multipliers(node.features))
    total = {k: sum(getattr(e, k) for e in layers) for k in
             ("weights", "nonzero", "multipliers", "dsp", "lut", "ff", "bram")}
    total["lut"] += extra_lut
    total["ff"] += extra_ff
    total["latency_cycles"] = sum(e.latency_cycles for e in layers)
    total["latency_ns"] = round(total["latency_cycles"] * config.clock_ns, 3)
    total["ii"] = max((e.ii for e in layers), default=1)
    total["accumulator_bits"] = sum(e.accumulator_bits for e in layers)
    return {"clock_ns": config.clock_ns, "part": config.part,
            "layers": [asdict(e) for e in layers], "total": total}
