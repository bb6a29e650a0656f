"""The one timing and resource model: what an op costs on the FPGA.

A model, not a synthesis result; its constants are stated here and explained in the README.
Ops price themselves with it (`Op.cost`, summed by fpgaq.estimate), and the Verilog back-end
pipelines its adder trees with the same adder budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .fixed import csd

# Timing (UltraScale+, speed grade -2): a register costs its clock-to-out, set-up and clock
# skew; an adder of up to ~32 bits on a carry chain, with its routing, about 0.7 ns.
REGISTER_NS = 0.6
ADDER_NS = 0.7
# Delays of the other operations, in adders.
ROUND_COST = 1.0        # the +1 of a rounding
SATURATE_COST = 1.0     # a comparison with a constant bound and its multiplexer
SIGN_MUX_COST = 0.5     # a multiplexer on the sign bit (ReLU)

# DSP48E2: a 27 x 18 signed multiplier.
DSP_A, DSP_B = 27, 18
# Products at least this wide (sum of operand widths) go to DSPs, narrower ones to LUTs; a
# constant weight with at most CONST_SHIFT_ADD_DIGITS canonical signed digits is a shift-and-add.
DSP_MIN_PRODUCT_BITS = 16
CONST_SHIFT_ADD_DIGITS = 2
DSP_STAGES = 3          # DSP48E2 with A/B, M and P registers
LUT_MULT_STAGES = 1
BRAM_BITS = 18 * 1024
LUTRAM_MAX_BITS = 4096  # shared weights up to this many bits stay in LUT RAM


def adder_budget(clock_ns: float) -> float:
    """How many adder delays fit between two registers at this clock period."""
    return max(1.0, float(int((clock_ns - REGISTER_NS) / ADDER_NS)))


def csd_digits(v: int) -> int:
    """Non-zero canonical signed digits of v: the adds a constant multiplication costs, plus one."""
    return len(csd(int(v)))


def product_dsps(a: int, b: int) -> int:
    """DSP48E2s for an a x b-bit signed product."""
    a, b = max(a, b), min(a, b)
    return math.ceil(a / DSP_A) * math.ceil(b / DSP_B)


def shift_add_luts(constant: int, x_bits: int) -> int:
    """LUTs of x * constant in shift-and-add: an adder of about the product's width per extra
    canonical signed digit."""
    return (csd_digits(constant) - 1) * (x_bits + abs(int(constant)).bit_length())


def compare_luts(x_bits: int) -> int:
    """LUTs of a comparison of an x_bits-wide code with a constant: about one a two bits, on
    the carry chain."""
    return -(-x_bits // 2)


@dataclass(frozen=True)
class Cost:
    """Latency and resources of one op, as the estimate sums them. `layer` holds the columns
    of a layer's row in the report (None: the op is part of a layer's output stage)."""
    latency_cycles: int = 0
    ii: int = 1
    dsp: int = 0
    lut: int = 0
    ff: int = 0
    bram: int = 0
    layer: dict | None = field(default=None, compare=False)
