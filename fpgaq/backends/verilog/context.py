"""IR -> the plain template context of a fully pipelined Verilog design.

Every decision is made here, in pure Python: the canonical signed digits of each weight, the
adder tree of each neuron, the width of every wire (from exact per-element intervals), and the
pipeline stage of every operation. The templates only lay the result out; the arithmetic is in
the hand-written primitives of ip/.
"""
from __future__ import annotations

import heapq
from functools import lru_cache

import numpy as np
from dataclasses import dataclass, field

from collections.abc import Callable

from ...config import BuildConfig
from ...errors import FpgaqError
from ...ir.cost import DSP_MIN_PRODUCT_BITS, ROUND_COST, SATURATE_COST, SIGN_MUX_COST, adder_budget, product_dsps
from ...ir.fixed import FixedType, Rounding, csd, shift_round
from ...ir.graph import Graph, Node
from ...ir.interval import Interval
from ...ir.ops import Add, Args, Argmax, Bipolar, ChannelQuant, Concat, DivQuant, Clip, Dense, LeakyRelu, Lut, MaxPool, Quant, Relu, Requant, Reshape, SoftmaxTable, Threshold, Transpose
from ...names import comment, identifier
from . import cmvm

MAX_CONSTANT_BITS = 64  # parameters of the primitives are at most 64-bit constants
# From this many adders a stage, a dense layer's outputs may all be as deep as its deepest one
# (more sharing; a stage holds a few levels more); below, each only as deep as its own tree.
EVEN_BUDGET = 4.0


@lru_cache(maxsize=1 << 16)
def _kind(iv: Interval) -> FixedType:
    return FixedType.holding(iv, 0)


@dataclass
class Value:
    """A wire: its Verilog name, the exact interval of its code and when it is ready."""
    name: str
    iv: Interval
    stage: int = 0
    depth: float = 0.0
    const: int | None = None
    kind: FixedType | None = None     # the declared type where it is not the interval's own (ports)

    @property
    def width(self) -> int:
        return (self.kind or _kind(self.iv)).width

    @property
    def signed(self) -> bool:
        return (self.kind or _kind(self.iv)).signed


def constant(c: int) -> Value:
    return Value("", Interval(c, c), stage=-1, depth=0.0, const=c)


@dataclass(frozen=True)
class Term:
    """sign * (value << shift): a partial sum of a neuron."""
    value: Value
    sign: int
    shift: int

    @property
    def iv(self) -> Interval:
        return self.value.iv.shift_left(self.shift).scale(self.sign)


def literal(c: int, width: int) -> str:
    """A sized Verilog literal of `width` bits holding the two's complement of c."""
    return f"{width}'h{c & ((1 << width) - 1):x}"


@dataclass
class Netlist:
    """Wires, primitive instances and pipeline registers, scheduled into clock stages."""
    budget: float
    taken: set[str] = field(default_factory=set)
    wires: list[dict] = field(default_factory=list)
    instances: list[dict] = field(default_factory=list)
    delays: dict[str, tuple[Value, int]] = field(default_factory=dict)   # name -> (value, registers)
    adders: int = 0
    share: bool = True      # dense layers as shared adder graphs (fpgaq.backends.verilog.cmvm)
    round_into: dict[str, int] = field(default_factory=dict)   # dense -> the half its quantizer rounds by
    ii: int = 1             # cycles between inputs: the largest reuse factor of a dense layer
    multipliers: int = 0    # shared multipliers (fpgaq_rmul) of the layers with reuse > 1
    valids: str | None = None   # a vector whose bit k is high where an input is in stage k (a stream's datapath)

    def valid(self, stage: int) -> str:
        """The signal that is high in the cycle an input is in `stage` (the valid pipeline)."""
        if self.valids is not None:
            return f"{self.valids}[{stage}]"
        return "in_take" if stage == 0 else f"valid_sr[{stage - 1}]"

    def new(self, base: str, iv: Interval, stage: int, depth: float) -> Value:
        v = Value(identifier(base, self.taken, "w"), iv, stage, depth)
        self.wires.append({"name": v.name, "width": v.width})
        return v

    def schedule(self, inputs: list[Value], cost: float) -> tuple[int, float]:
        """Stage and depth of an operation on `inputs`: as early as it can be, in the latest
        input's stage while the adder budget allows, else at the start of the next stage."""
        live = [v for v in inputs if v.const is None]
        if not live:
            return 0, cost
        stage = max(v.stage for v in live)
        depth = max(v.depth for v in live if v.stage == stage)
        if depth + cost <= self.budget or cost == 0:
            return stage, depth + cost
        return stage + 1, cost

    def at(self, v: Value, stage: int) -> str:
        """The signal carrying v in `stage`: v itself or a registered copy."""
        if v.const is not None:
            return literal(v.const, v.width)
        k = stage - v.stage
        assert k >= 0, (v.name, stage)
        if k == 0:
            return v.name
        _, have = self.delays.get(v.name, (v, 0))
        self.delays[v.name] = (v, max(have, k))
        return f"{v.name}_R{k}"     # identifier() never makes upper case: no clash

    def instance(self, module: str, out: Value, params: dict, inputs: dict[str, Value]) -> None:
        ports = {p: self.at(v, out.stage) for p, v in inputs.items()}
        ports["y"] = out.name
        entry: dict[str, object] = {"module": module, "name": f"u_{out.name}", "params": list(params.items()),
                 "ports": list(ports.items())}
        if module == "fpgaq_add":
            # written in place by templates/verilog/adder.j2; a constant operand as a literal of
            # the width the adder reads it at
            a, b = inputs["a"], inputs["b"]
            hi = max(params["WO"] - params["SH"], 1)
            entry["add"] = {**params, "y": out.name, "a": ports["a"], "b": ports["b"],
                            "a_lit": None if a.const is None else literal(a.const, hi),
                            "b_lit": None if b.const is None else literal(b.const, params["WO"])}
        self.instances.append(entry)

    def registers(self) -> list[dict]:
        regs = []
        for name, (v, k) in sorted(self.delays.items()):
            regs.append({"source": name, "width": v.width,
                         "taps": [f"{name}_R{i}" for i in range(1, k + 1)]})
        return regs


# --- one operation of the graph, on each element ---

def _combine(net: Netlist, a: Term, b: Term, base: str, of: Value | None = None, coef: int = 0,
             exact: Interval | None = None) -> Term:
    """One adder: a + b. The result is kept as sign * (wire << shift), so that shifts and
    negations cost nothing: the adder adds `s` shifted left to `u` (or subtracts it).
    With `of`, a + b is known to be coef * of (one value times a constant), and with `exact`,
    a + b is known to lie in that interval: the wire gets that exact interval instead of the
    sum of the two intervals."""
    k = min(a.shift, b.shift)
    if a.shift == b.shift:
        u, s = (a, b) if a.sign >= b.sign else (b, a)
    else:
        u, s = (a, b) if a.shift == k else (b, a)
    neg = s.sign != u.sign
    sh = s.shift - k
    s_iv = s.value.iv.shift_left(sh).scale(-1 if neg else 1)
    stage, depth = net.schedule([u.value, s.value], 1.0)
    if exact is not None:        # every value of a + b is a multiple of 2**k, its ends too
        iv = Interval(exact.lo >> k, exact.hi >> k).scale(u.sign)
    elif of is None:
        iv = u.value.iv + s_iv
    else:                        # the wire is (a + b) / (u.sign << k) = of * (coef / (u.sign << k))
        assert coef % (1 << k) == 0
        iv = of.iv.scale(u.sign * (coef >> k))
    out = net.new(base, iv, stage, depth)
    net.instance("fpgaq_add", out, _add_params(s.value, u.value, sh, neg, out), {"a": s.value, "b": u.value})
    net.adders += 1
    return Term(out, u.sign, k)


def _add_params(a: Value, b: Value, sh: int, neg: bool, out: Value) -> dict:
    return {"WA": a.width, "SA": int(a.signed), "WB": b.width, "SB": int(b.signed),
            "SH": sh, "NEG": int(neg), "WO": out.width}


def _neuron(net: Netlist, base: str, terms: list[Term], bias: int) -> Value:
    """sum(terms) + bias through the adder tree that finishes earliest: always add the two
    partial sums that are ready first (Huffman's rule on arrival time)."""
    if not terms:
        return constant(bias)
    heap = [((t.value.stage, t.value.depth), i, t) for i, t in enumerate(terms)]
    heapq.heapify(heap)
    seq = len(heap)
    while len(heap) > 1:
        _, _, a = heapq.heappop(heap)
        _, _, b = heapq.heappop(heap)
        t = _combine(net, a, b, f"{base}_s")
        heapq.heappush(heap, ((t.value.stage, t.value.depth), seq, t))
        seq += 1
    (_, _, t), = heap
    return _plus_bias(net, base, t, bias)


def _plus_bias(net: Netlist, base: str, t: Term, bias: int) -> Value:
    """t + bias as a wire of its own: an adder of a constant (or wiring, for a bare shift)."""
    if t.sign == 1 and t.shift == 0 and bias == 0:
        return t.value
    iv = t.iv + Interval(bias, bias)
    cost = 0.0 if (bias == 0 and t.sign == 1) else 1.0     # a bare shift is wiring
    stage, depth = net.schedule([t.value], cost)
    out = net.new(base, iv, stage, depth)
    c = constant(bias)
    net.instance("fpgaq_add", out, _add_params(t.value, c, t.shift, t.sign < 0, out), {"a": t.value, "b": c})
    net.adders += cost > 0
    return out


def _check_constant(c: int, node: Node, what: str) -> None:
    bits = Interval.around(c).width(signed=True)
    if bits > MAX_CONSTANT_BITS:
        raise FpgaqError(f"{node.origin}: a {what} needs {bits} bits; the Verilog "
                         f"back-end handles constants of up to {MAX_CONSTANT_BITS} bits. Use narrower quantizers")


Coef = dict[int, int]        # a linear combination of a dense layer's inputs: {input: coefficient}


def _span(coef: Coef, xs: list[Value]) -> Interval:
    """The exact interval of sum(c * xs[i]) over the inputs' intervals."""
    lo = hi = 0
    for i, c in coef.items():
        a, b = xs[i].iv.lo * c, xs[i].iv.hi * c
        lo, hi = lo + min(a, b), hi + max(a, b)
    return Interval(lo, hi)


def _merge(a: Coef, b: Coef) -> Coef:
    out = dict(a)
    for i, c in b.items():
        out[i] = out.get(i, 0) + c
    return {i: c for i, c in out.items() if c}


def _scaled(t: Term, coef: Coef, shift: int, sign: int) -> tuple[Term, Coef]:
    """sign * (t << shift), with its linear combination."""
    return Term(t.value, t.sign * sign, t.shift + shift), {i: sign * (c << shift) for i, c in coef.items()}


def _shared(net: Netlist, base: str, prog: cmvm.Program, xs: list[Value]) -> list[tuple[Term, Coef]]:
    """The program's nodes: the inputs, then its shared adders, each as wide as its exact range."""
    nodes = [(Term(x, 1, 0), {i: 1}) for i, x in enumerate(xs)]
    for ad in prog.adders:
        a, ca = _scaled(*nodes[ad.a], ad.shift_a, 1)
        b, cb = _scaled(*nodes[ad.b], ad.shift_b, ad.sign)
        coef = _merge(ca, cb)
        nodes.append((_combine(net, a, b, f"{base}_c", exact=_span(coef, xs)), coef))
    return nodes


def _sum(net: Netlist, base: str, items: list[tuple[Term, Coef]], xs: list[Value], bias: int) -> Value:
    """sum(items) + bias through the adder tree that finishes earliest (the two partial sums
    ready first are added first; the bias, a constant, is ready before all), every partial sum
    as wide as its exact range."""
    if not items:
        return constant(bias)
    leaves = [(t, c, 0) for t, c in items] + ([(Term(constant(bias), 1, 0), {}, bias)] if bias else [])
    heap = [((t.value.stage, t.value.depth), i, t, c, k) for i, (t, c, k) in enumerate(leaves)]
    heapq.heapify(heap)
    seq = len(heap)
    while len(heap) > 1:
        _, _, a, ca, ka = heapq.heappop(heap)
        _, _, b, cb, kb = heapq.heappop(heap)
        coef, k = _merge(ca, cb), ka + kb
        t = _combine(net, a, b, f"{base}_s", exact=_span(coef, xs) + Interval(k, k))
        net.adders -= a.value.const is not None or b.value.const is not None    # a constant's add is no adder
        heapq.heappush(heap, ((t.value.stage, t.value.depth), seq, t, coef, k))
        seq += 1
    (_, _, t, _, _), = heap
    return _plus_bias(net, base, t, 0)


def _levels(net: Netlist, xs: list[Value]) -> list[int]:
    """When each input is ready, in whole adder delays after the first."""
    times = [v.stage * net.budget + v.depth for v in xs]
    first = min(times, default=0.0)
    return [int(np.ceil(t - first - 1e-9)) for t in times]


def _dense(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    """W x + b as one adder graph: sub-expressions shared across neurons and signed digits
    (cmvm), then each neuron's remaining terms summed; a constant input folds into the bias."""
    op = node.op
    assert isinstance(op, Dense)
    live = [i for i, x in enumerate(xs) if x.const is None]
    consts = {i: x.const for i, x in enumerate(xs) if x.const is not None}
    lx = [xs[i] for i in live]
    half = net.round_into.get(node.name, 0)
    biases = [int(op.bias[o]) + half + sum(int(op.weight[o, i]) * k for i, k in consts.items())
              for o in range(op.weight.shape[0])]
    prog = cmvm.optimise(op.weight[:, live].astype(object).tolist(), _levels(net, lx), share=net.share,
                         constants=[int(b != 0) for b in biases], even=net.budget >= EVEN_BUDGET)
    nodes = _shared(net, node.name, prog, lx)
    out = []
    for o, terms in enumerate(prog.outputs):
        bias = biases[o]
        _check_constant(bias, node, "bias")
        items = [_scaled(*nodes[n], shift, sign) for n, shift, sign in terms]
        out.append(_sum(net, f"{node.name}_{o}", items, lx, bias))
    return out


# --- a dense layer with reuse factor R > 1: its products time-multiplexed over R cycles ---

def _dense_any(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    op = node.op
    assert isinstance(op, Dense)
    return _dense_reuse(net, node, xs) if op.reuse > 1 else _dense(net, node, src, xs)


Product = tuple[int, int, int]      # (output, input, weight) of a dense layer


def _instance(net: Netlist, module: str, out: Value, params: dict, ports: dict[str, str]) -> None:
    """A primitive whose ports are wired by hand (clocked ones, and operand buses)."""
    net.instances.append({"module": module, "name": f"u_{out.name}", "params": list(params.items()),
                          "ports": list({**ports, _out_port(module): out.name}.items())})


def _out_port(module: str) -> str:
    return "phase" if module == "fpgaq_phase" else "y"


def _dense_reuse(net: Netlist, node: Node, xs: list[Value]) -> list[Value]:
    """W x + b over R cycles: the input is held, the non-zero products (output by output) are
    cut into runs of R, one shared multiplier a run computing one product a cycle (the operand
    and the weight chosen by the phase); each output sums its multipliers' products of the cycle
    (gated where a multiplier also works for another output) and accumulates R such sums. The
    layer takes an input every R cycles; its outputs are ready R cycles after the first sum."""
    op = node.op
    assert isinstance(op, Dense)
    r = op.reuse
    live = [i for i, x in enumerate(xs) if x.const is None]
    consts = {i: x.const for i, x in enumerate(xs) if x.const is not None}
    half = net.round_into.get(node.name, 0)
    n_out = op.weight.shape[0]
    biases = [int(op.bias[o]) + half + sum(int(op.weight[o, i]) * k for i, k in consts.items())
              for o in range(n_out)]
    products: list[Product] = [(o, i, int(op.weight[o, i])) for o in range(n_out) for i in live
                               if op.weight[o, i] != 0]
    for b in biases:
        _check_constant(b, node, "bias")
    if not products:
        return [constant(b) for b in biases]
    net.ii = max(net.ii, r)
    base = node.name
    used = sorted({i for _, i, _ in products})
    s_in = max(xs[i].stage for i in used)
    span = Interval(min(xs[i].iv.lo for i in used), max(xs[i].iv.hi for i in used))
    hold_t = FixedType.holding(span, 0)
    holds: dict[int, Value] = {}
    for i in used:                   # the input, held for the R cycles the multipliers read it
        v = net.new(f"{base}_x{i}", xs[i].iv, s_in + 1, 0.0)
        v.kind = hold_t
        net.wires[-1]["width"] = hold_t.width
        _instance(net, "fpgaq_hold", v, {"WI": xs[i].width, "SI": int(xs[i].signed), "WO": hold_t.width},
                  {"clk": "clk", "en": net.valid(s_in), "x": net.at(xs[i], s_in)})
        holds[i] = v
    wp = max(1, (r - 1).bit_length())
    phase = net.new(f"{base}_phase", Interval(0, r - 1), s_in + 1, 0.0)
    _instance(net, "fpgaq_phase", phase, {"R": r, "WP": wp}, {"clk": "clk", "rst": "rst", "start": net.valid(s_in)})
    terms: list[list[Term]] = [[] for _ in range(n_out)]
    for m in range(-(-len(products) // r)):
        run = products[m * r:(m + 1) * r]
        prod = _shared_product(net, f"{base}_p{m}", run, r, holds, phase, wp, hold_t, op.fabric)
        for o in dict.fromkeys(o for o, _, _ in run):
            mask = [k < len(run) and run[k][0] == o for k in range(r)]
            if all(mask[k] or k >= len(run) for k in range(r)):
                terms[o].append(Term(prod, 1, 0))      # the multiplier works for o alone
                continue
            iv = Interval(0, 0)
            for (oo, i, w) in run:
                if oo == o:
                    iv = iv.union(holds[i].iv.scale(w))
            stage, depth = net.schedule([prod, phase], SIGN_MUX_COST)
            g = net.new(f"{base}_p{m}_o{o}", iv, stage, depth)
            _instance(net, "fpgaq_gate", g, {"R": r, "WP": wp, "MASK": _mask(mask), "WI": prod.width,
                                             "SI": int(prod.signed), "WO": g.width},
                      {"phase": net.at(phase, stage), "x": net.at(prod, stage)})
            terms[o].append(Term(g, 1, 0))
    out = []
    for o in range(n_out):
        if not terms[o]:
            out.append(constant(biases[o]))
            continue
        part = _neuron(net, f"{base}_{o}_s", terms[o], 0)       # this cycle's products of o
        stage, _ = net.schedule([part], 1.0 + SIGN_MUX_COST)
        coef = {live.index(i): w for oo, i, w in products if oo == o}
        iv = _span(coef, [xs[i] for i in live]) + Interval(biases[o], biases[o])
        acc = net.new(f"{base}_{o}", iv, stage + r, 0.0)
        _instance(net, "fpgaq_acc", acc, {"WI": part.width, "SI": int(part.signed), "WO": acc.width,
                                          "INIT": literal(biases[o], acc.width)},
                  {"clk": "clk", "first": net.valid(stage), "x": net.at(part, stage)})
        net.adders += 1
        out.append(acc)
    return out


def _shared_product(net: Netlist, base: str, run: list[Product], r: int, holds: dict[int, Value],
                    phase: Value, wp: int, hold_t: FixedType, fabric: bool) -> Value:
    """One multiplier: in phase k, the k-th product of `run` (weight 0 past its end), a stage
    of its own like every product; `fabric`: in LUTs, never on a DSP."""
    ops = [holds[i] for _, i, _ in run] + [holds[run[0][1]]] * (r - len(run))
    ws = [w for _, _, w in run] + [0] * (r - len(run))
    ww = max(Interval.around(w).width(signed=True) for w in ws)
    iv = ops[0].iv.scale(ws[0])
    for x, w in zip(ops[1:], ws[1:]):
        iv = iv.union(x.iv.scale(w))
    stage, depth = net.schedule([phase, *ops], net.budget)
    v = net.new(base, iv, stage, depth)
    mask = (1 << ww) - 1
    packed = sum((w & mask) << (k * ww) for k, w in enumerate(ws))
    bus = "{" + ", ".join(net.at(x, stage) for x in reversed(ops)) + "}"
    # on a DSP where the product is as wide as the cost model puts there (fpgaq.ir.cost), else in LUTs
    wide = hold_t.width + (0 if hold_t.signed else 1) + ww >= DSP_MIN_PRODUCT_BITS
    _instance(net, "fpgaq_rmul", v, {"R": r, "WP": wp, "WX": hold_t.width, "SX": int(hold_t.signed), "WW": ww,
                                     "W": f"{r * ww}'h{packed:x}", "WO": v.width, "DSP": int(wide and not fabric)},
              {"phase": net.at(phase, stage), "x": bus})
    net.multipliers += 1
    return v


def _mask(bits: list[bool]) -> str:
    return f"{len(bits)}'b" + "".join("1" if b else "0" for b in reversed(bits))


def _requant(net: Netlist, node: Node, base: str, x: Value, shift: int, rounding: Rounding,
             lo: int | None, hi: int | None) -> Value:
    """min(max(shift_round(x, shift), lo), hi), with bounds that cannot bite left out."""
    rlo, rhi = (shift_round(x.iv.lo, shift, rounding), shift_round(x.iv.hi, shift, rounding))
    sat_lo = lo is not None and rlo < lo
    sat_hi = hi is not None and rhi > hi
    iv = Interval(rlo, rhi).clamp(lo if lo is not None else rlo, hi if hi is not None else rhi)
    if x.const is not None or iv.lo == iv.hi:
        c = shift_round(x.const, shift, rounding) if x.const is not None else iv.lo
        return constant(min(max(c, lo if lo is not None else c), hi if hi is not None else c))
    rounds = shift > 0 and rounding is not Rounding.FLOOR
    cost = (ROUND_COST if rounds else 0.0)
    if sat_lo and lo == 0 and not sat_hi and shift <= 0:
        cost += SIGN_MUX_COST
    elif sat_lo or sat_hi:
        cost += SATURATE_COST
    if cost == 0 and shift == 0 and iv == x.iv:
        return x                                   # nothing to do
    floor_iv = Interval(x.iv.lo >> shift, (x.iv.hi >> shift) + 1) if shift > 0 else x.iv.shift_left(-shift)
    wc_iv = floor_iv.union(Interval(lo if lo is not None and sat_lo else floor_iv.lo,
                                    hi if hi is not None and sat_hi else floor_iv.hi))
    wc = FixedType.holding(wc_iv.union(Interval(-1, 0)), 0).width
    stage, depth = net.schedule([x], cost)
    out = net.new(base, iv, stage, depth)
    lo_c = lo if lo is not None and sat_lo else 0
    hi_c = hi if hi is not None and sat_hi else 0
    for b in (lo_c, hi_c):
        _check_constant(b, node, "saturation bound")
    params = {"WI": x.width, "SI": int(x.signed), "SHIFT": shift, "MODE": rounding.value,
              "WC": wc, "SAT_LO": int(sat_lo), "SAT_HI": int(sat_hi),
              "LO": _signed_literal(lo_c, wc), "HI": _signed_literal(hi_c, wc), "WO": out.width}
    net.instance("fpgaq_requant", out, params, {"x": x})
    return out


def multiplier_digits(m: int) -> tuple[int, list[tuple[int, int]]]:
    """m == sum(sign << shift for shift, sign in digits) << t, for a positive m: t its trailing
    zeros (a shift the requantizer absorbs) and signed digits of the odd rest whose lowest digit
    is +1, so that the adder tree's result is x * (m >> t) itself, never its negation. That is
    the canonical signed digits when they end in +1, else 1 + 2 * csd((odd - 1) / 2)."""
    assert m > 0
    t = (m & -m).bit_length() - 1
    odd = m >> t
    digits = csd(odd)
    if digits[0] != (0, 1):
        digits = [(0, 1)] + [(k + 1, d) for k, d in csd((odd - 1) >> 1)]
    return t, digits


def _const_product(net: Netlist, base: str, x: Value, m: int) -> Value:
    """x * m for an odd m > 0: one adder per extra signed digit, the digits summed in a
    balanced tree (all are ready together), each partial sum as wide as its exact range."""
    _, digits = multiplier_digits(m)
    if len(digits) == 1:
        return x
    heap = [((x.stage, x.depth), i, Term(x, d, k), d << k) for i, (k, d) in enumerate(digits)]
    heapq.heapify(heap)
    seq = len(heap)
    while len(heap) > 1:
        _, _, a, ca = heapq.heappop(heap)
        _, _, b, cb = heapq.heappop(heap)
        t = _combine(net, a, b, f"{base}_m", of=x, coef=ca + cb)
        heapq.heappush(heap, ((t.value.stage, t.value.depth), seq, t, ca + cb))
        seq += 1
    (_, _, t, c), = heap
    assert t.sign == 1 and t.shift == 0 and c == m
    return t.value


def _int_requant(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    """clamp(shift_round(x[c] * M[c] + offset[c], shift)) per channel: the constant product in
    shift-and-add (its power-of-two factor moved into the shift, or into the offset's adder),
    then the requantizer."""
    op = node.op
    assert isinstance(op, Requant)
    out = []
    for c, (x, m, off) in enumerate(zip(xs, op.multipliers(len(xs)), op.offsets(len(xs)))):
        m, off = int(m), int(off)
        t, _ = multiplier_digits(m)
        base = f"{node.name}_{c}"
        if x.const is not None:
            p = constant(x.const * m + off)
            t = 0
        else:
            p = _const_product(net, base, x, m >> t)
            if off:                       # (p << t) + offset, in one adder
                _check_constant(off, node, "requantisation offset")
                stage, depth = net.schedule([p], 1.0)
                q = net.new(f"{base}_o", p.iv.shift_left(t) + Interval(off, off), stage, depth)
                cst = constant(off)
                net.instance("fpgaq_add", q, _add_params(p, cst, t, False, q), {"a": p, "b": cst})
                net.adders += 1
                p, t = q, 0
        out.append(_requant(net, node, base, p, op.shift - t, op.rounding, op.lo, op.hi))
    return out


def _threshold(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    """start + step * #{k : x >= T[k]}: the thresholds the input's range cannot cross are
    folded into the start; a single live threshold is one comparison."""
    op = node.op
    assert isinstance(op, Threshold) and node.type is not None
    out = []
    rows = op.thresholds if op.start.size > 1 else [op.thresholds[0]] * len(xs)
    starts = op.start if op.start.size > 1 else [op.start[0]] * len(xs)
    for i, (x, row, start) in enumerate(zip(xs, rows, starts)):
        if x.const is not None:
            out.append(constant(int(start) + op.step * int(sum(x.const >= int(t) for t in row))))
            continue
        live = [int(t) for t in row if x.iv.lo < int(t) <= x.iv.hi]
        base = int(start) + op.step * sum(1 for t in row if int(t) <= x.iv.lo)
        if not live:
            out.append(constant(base))
            continue
        iv = Interval(base, base + op.step * len(live))
        stage, depth = net.schedule([x], SATURATE_COST + (1.0 if len(live) > 1 else 0.0))
        v = net.new(f"{node.name}_{i}", iv, stage, depth)
        wt = FixedType.holding(x.iv.union(Interval(-1, 0)), 0).width
        packed = sum((t & ((1 << wt) - 1)) << (k * wt) for k, t in enumerate(live))
        params = {"WI": x.width, "SI": int(x.signed), "N": len(live), "WT": wt,
                  "T": f"{len(live) * wt}'h{packed:x}", "START": base, "STEP": op.step, "WO": v.width}
        net.instance("fpgaq_threshold", v, params, {"x": x})
        out.append(v)
    return out


def _signed_literal(c: int, width: int) -> str:
    return f"-{width}'sd{-c}" if c < 0 else f"{width}'sd{c}"


def _quant(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    op = node.op
    assert isinstance(op, Quant) and src.type is not None
    rounding = Rounding.FLOOR if src.name in net.round_into else op.rounding    # its half is in the bias
    return [_requant(net, node, f"{node.name}_{i}", x, src.type.frac - op.type.frac, rounding, op.lo, op.hi)
            for i, x in enumerate(xs)]


def round_into_bias(graph: Graph) -> dict[str, int]:
    """Dense layers whose only reader is a quantizer rounding half up that clamps at or above
    zero, with the half it adds before its floor: clamp(floor((x + half) >> s)) equals
    clamp(round_half_up(x >> s)) there (a tie can only differ below zero, where both clamp),
    so the half goes into the layer's bias and the quantizer's rounding adder disappears."""
    out = {}
    for node in graph.nodes:
        op = node.op
        if not (isinstance(op, Dense) and node.type is not None) or node.name in graph.outputs:
            continue
        readers = graph.consumers(node.name)
        if len(readers) != 1 or not isinstance(q := readers[0].op, Quant) or q.type is None:
            continue
        shift = node.type.frac - q.type.frac
        if q.rounding is Rounding.HALF_UP and shift > 0 and q.lo is not None and q.lo >= 0:
            out[node.name] = 1 << (shift - 1)
    return out


def _channel_quant(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    """Each element its own requantizer (shift, rounding, bounds), then its codes moved onto the
    tensor's common grid (a shift: wiring)."""
    op = node.op
    assert isinstance(op, ChannelQuant) and src.type is not None
    out = []
    for i, (x, f, lo, hi) in enumerate(zip(xs, op.fracs, op.lo, op.hi)):
        base = f"{node.name}_{i}"
        y = _requant(net, node, base, x, src.type.frac - int(f), op.rounding, int(lo), int(hi))
        out.append(_requant(net, node, f"{base}_g", y, int(f) - op.type.frac, Rounding.FLOOR, None, None))
    return out


def _relu(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    return [_requant(net, node, f"{node.name}_{i}", x, 0, Rounding.FLOOR, 0, None) for i, x in enumerate(xs)]


def _clip(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    op = node.op
    assert isinstance(op, Clip)
    lo, hi = op.code_bounds(src.out)
    return [_requant(net, node, f"{node.name}_{i}", x, 0, Rounding.FLOOR, lo, hi) for i, x in enumerate(xs)]


def _bipolar(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    out = []
    for i, x in enumerate(xs):
        if x.const is not None or x.iv.lo >= 0 or x.iv.hi < 0:
            out.append(constant(1 if (x.const if x.const is not None else x.iv.lo) >= 0 else -1))
            continue
        stage, depth = net.schedule([x], 0.0)
        v = net.new(f"{node.name}_{i}", Interval(-1, 1), stage, depth)
        net.instance("fpgaq_bipolar", v, {"WI": x.width, "SI": int(x.signed)}, {"x": x})
        out.append(v)
    return out


def _packed(values, width: int) -> str:
    """Integers as one Verilog literal of `width` bits each, value k at [k*width +: width]."""
    mask = (1 << width) - 1
    return f"{len(values) * width}'h{sum((int(v) & mask) << (k * width) for k, v in enumerate(values)):x}"


def _table(net: Netlist, node: Node, base: str, x: Value, table: np.ndarray, lo: int, hi: int,
           shift: int) -> Value:
    """table[(clamp(x, lo, hi) - lo) >> shift], with only the entries x's range reaches."""
    def index(c: int) -> int:
        return (min(max(c, lo), hi) - lo) >> shift
    if x.const is not None:
        return constant(int(table[index(x.const)]))
    k0, k1 = index(x.iv.lo), index(x.iv.hi)
    part = [int(v) for v in table[k0:k1 + 1]]
    if min(part) == max(part):
        return constant(part[0])
    lo, hi = lo + (k0 << shift), min(hi, lo + (k1 << shift) + (1 << shift) - 1)
    for c in (lo, hi):
        _check_constant(c, node, "table bound")
    wt = FixedType.holding(x.iv.union(Interval(min(lo, 0), max(hi, hi - lo, 0))).union(Interval(-1, 0)), 0).width
    iv = Interval(min(part), max(part))
    stage, depth = net.schedule([x], SATURATE_COST + 1.0)
    v = net.new(base, iv, stage, depth)
    mask = (1 << wt) - 1
    params = {"WI": x.width, "SI": int(x.signed), "WT": wt, "LO": f"{wt}'h{lo & mask:x}",
              "HI": f"{wt}'h{hi & mask:x}", "SHIFT": shift, "N": len(part), "WO": v.width,
              "TABLE": _packed(part, v.width)}
    net.instance("fpgaq_lut", v, params, {"x": x})
    return v


def _lut(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    op = node.op
    assert isinstance(op, Lut)
    return [_table(net, node, f"{node.name}_{i}", x, op.table, op.lo, op.hi, op.shift) for i, x in enumerate(xs)]


def _max(net: Netlist, base: str, a: Value, b: Value) -> Value:
    """The larger of a and b (a on a tie)."""
    if a.const is not None and b.const is not None:
        return constant(max(a.const, b.const))
    iv = Interval(max(a.iv.lo, b.iv.lo), max(a.iv.hi, b.iv.hi))
    stage, depth = net.schedule([a, b], SATURATE_COST)
    v = net.new(base, iv, stage, depth)
    wc = FixedType.holding(a.iv.union(b.iv).union(Interval(-1, 0)), 0).width
    net.instance("fpgaq_max", v, {"WA": a.width, "SA": int(a.signed), "WB": b.width, "SB": int(b.signed),
                                  "WC": wc, "WO": v.width}, {"a": a, "b": b})
    return v


def _max_tree(net: Netlist, base: str, xs: list[Value]) -> Value:
    """The largest of xs (the first on a tie), pairing neighbours level by level."""
    level = list(xs)
    while len(level) > 1:
        nxt = [_max(net, f"{base}_m", level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def _mul(net: Netlist, base: str, a: Value, b: Value) -> Value:
    if a.const is not None and b.const is not None:
        return constant(a.const * b.const)
    ends = [p * q for p in (a.iv.lo, a.iv.hi) for q in (b.iv.lo, b.iv.hi)]
    stage, depth = net.schedule([a, b], net.budget)      # a product takes a stage of its own
    v = net.new(base, Interval(min(ends), max(ends)), stage, depth)
    net.instance("fpgaq_mul", v, {"WA": a.width, "SA": int(a.signed), "WB": b.width, "SB": int(b.signed),
                                  "WO": v.width}, {"a": a, "b": b})
    return v


def _softmax(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    """Per row: the maximum, the differences, the exp table, their sum, the 1/sum table, the
    products and their rounding: the steps of SoftmaxTable, one primitive each."""
    op = node.op
    assert isinstance(op, SoftmaxTable)
    n = src.out.shape[-1]
    out = []
    for r in range(0, len(xs), n):
        row, base = xs[r:r + n], f"{node.name}_r{r // n}"
        top = _max_tree(net, base, row)
        es = []
        for i, x in enumerate(row):
            if x.const is not None and top.const is not None:
                d = constant(top.const - x.const)
            else:
                stage, depth = net.schedule([x, top], 1.0)
                d = net.new(f"{base}_d{i}", Interval(0, max(0, top.iv.hi - x.iv.lo)), stage, depth)
                net.instance("fpgaq_add", d, _add_params(x, top, 0, True, d), {"a": x, "b": top})
                net.adders += 1
            es.append(_table(net, node, f"{base}_e{i}", d, op.exp_table, 0, op.d_hi, op.exp_shift))
        s = _neuron(net, f"{base}_s", [Term(e, 1, 0) for e in es if e.const is None],
                    sum(e.const for e in es if e.const is not None))
        inv = _table(net, node, f"{base}_inv", s, op.inv_table, op.s_lo, op.s_hi, op.inv_shift)
        for i, e in enumerate(es):
            p = _mul(net, f"{base}_p{i}", e, inv)
            out.append(_requant(net, node, f"{node.name}_{r + i}", p, op.out_shift, Rounding.HALF_UP, None, None))
    return out


def _argmax(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    """The largest key code * 2**b + (2**b - 1 - index) of each row: its low bits, inverted."""
    n = src.out.shape[-1]
    b = max(1, (n - 1).bit_length())
    out = []
    for r in range(0, len(xs), n):
        base = f"{node.name}_r{r // n}"
        keys = []
        for i, x in enumerate(xs[r:r + n]):
            c = constant((1 << b) - 1 - i)
            if x.const is not None:
                keys.append(constant((x.const << b) + (1 << b) - 1 - i))
                continue
            stage, depth = net.schedule([x], 0.0)
            k = net.new(f"{base}_k{i}", x.iv.shift_left(b) + c.iv, stage, depth)
            net.instance("fpgaq_add", k, _add_params(x, c, b, False, k), {"a": x, "b": c})
            keys.append(k)
        top = _max_tree(net, base, keys)
        if top.const is not None:
            out.append(constant((1 << b) - 1 - (top.const & ((1 << b) - 1))))
            continue
        stage, depth = net.schedule([top], 0.0)
        v = net.new(f"{node.name}_{r // n}", Interval(0, n - 1), stage, depth)
        net.instance("fpgaq_index", v, {"WI": top.width, "WO": v.width}, {"x": top})
        out.append(v)
    return out


def _leaky_relu(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    """x << shift where x >= 0, else x * slope: the slope's odd part in shift-and-add, its
    power of two and the choice by the sign in one primitive."""
    op = node.op
    assert isinstance(op, LeakyRelu)
    out = []
    for i, (x, m) in enumerate(zip(xs, op.slopes(len(xs)))):
        m, base = int(m), f"{node.name}_{i}"
        if x.const is not None:
            out.append(constant(x.const << op.shift if x.const >= 0 else x.const * m))
            continue
        if x.iv.lo >= 0:
            out.append(_requant(net, node, base, x, -op.shift, Rounding.FLOOR, None, None))
            continue
        t, neg = 0, constant(0)
        if m:
            t, _ = multiplier_digits(m)
            neg = _const_product(net, base, x, m >> t)
        ends = [x.iv.lo * m, min(x.iv.hi, -1) * m] + ([x.iv.hi << op.shift, 0] if x.iv.hi >= 0 else [])
        stage, depth = net.schedule([x, neg], SIGN_MUX_COST)
        v = net.new(base, Interval(min(ends), max(ends)), stage, depth)
        net.instance("fpgaq_leaky", v, {"WI": x.width, "SI": int(x.signed), "WN": neg.width, "SN": int(neg.signed),
                                        "SHP": op.shift, "SHN": t, "WO": v.width}, {"x": x, "n": neg})
        out.append(v)
    return out


def _max_pool(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    """Each output the largest of its window: a tree of comparisons."""
    op = node.op
    assert isinstance(op, MaxPool)
    return [_max_tree(net, f"{node.name}_{o}", [xs[int(i)] for i in dict.fromkeys(row)])
            for o, row in enumerate(op.windows(src.out.shape))]


def _transpose(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    op = node.op
    assert isinstance(op, Transpose)
    return [xs[int(i)] for i in np.arange(len(xs)).reshape(src.out.shape).transpose(op.perm).ravel()]


def _div_quant(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    """The exact division of an average's sum by a constant, rounded and saturated: a stage of
    its own (a constant divider)."""
    op = node.op
    assert isinstance(op, DivQuant) and node.interval is not None
    up, den = op.scaling(src.out)
    out = []
    for i, x in enumerate(xs):
        if x.const is not None:
            from_codes = op.emulate([np.array([x.const])], Args((src.out,), node.out, False, (False,)))
            out.append(constant(int(np.ravel(from_codes)[0])))
            continue
        wc = FixedType.holding(x.iv.shift_left(up).union(Interval(-2 * den, 2 * den)).union(
            Interval(op.lo, op.hi)), 0).width + 1
        stage, depth = net.schedule([x], net.budget)
        v = net.new(f"{node.name}_{i}", node.interval, stage, depth)
        net.instance("fpgaq_divq", v, {"WI": x.width, "SI": int(x.signed), "UP": up, "MODE": op.rounding.value,
                                       "WC": wc, "DEN": _signed_literal(den, wc), "LO": _signed_literal(op.lo, wc),
                                       "HI": _signed_literal(op.hi, wc), "WO": v.width}, {"x": x})
        out.append(v)
    return out


def _reshape(net: Netlist, node: Node, src: Node, xs: list[Value]) -> list[Value]:
    return xs          # the same wires, in the same order: another shape costs nothing


# one kernel an op: it builds the op's wires and primitive instances into the netlist
KERNELS: dict[type, Callable[[Netlist, Node, Node, list[Value]], list[Value]]] = {
    Quant: _quant, Relu: _relu, Clip: _clip, Bipolar: _bipolar, Dense: _dense_any, Requant: _int_requant,
    Reshape: _reshape, Threshold: _threshold, Lut: _lut, SoftmaxTable: _softmax, Argmax: _argmax,
    LeakyRelu: _leaky_relu, ChannelQuant: _channel_quant, MaxPool: _max_pool, Transpose: _transpose,
    DivQuant: _div_quant,
}


def _add2(net: Netlist, node: Node, srcs: list[Node], values: list[list[Value]]) -> list[Value]:
    """Two run-time tensors on the output's grid, added: one adder an element, the coarser
    input shifted (wiring)."""
    assert node.type is not None
    out = []
    (sa, sb), (xa, xb) = srcs, values
    assert sa.type is not None and sb.type is not None
    for i, (a, b) in enumerate(zip(xa, xb)):
        ka, kb = node.type.frac - sa.type.frac, node.type.frac - sb.type.frac
        u, v, sh = (b, a, ka) if ka >= kb else (a, b, kb)       # v << sh added to u (the finer one)
        if a.const is not None and b.const is not None:
            out.append(constant((a.const << ka) + (b.const << kb)))
            continue
        stage, depth = net.schedule([u, v], 1.0)
        w = net.new(f"{node.name}_{i}", u.iv + v.iv.shift_left(sh), stage, depth)
        net.instance("fpgaq_add", w, _add_params(v, u, sh, False, w), {"a": v, "b": u})
        net.adders += 1
        out.append(w)
    return out


def _concat(net: Netlist, node: Node, srcs: list[Node], values: list[list[Value]]) -> list[Value]:
    """Wiring: each output element one input's, shifted onto the output's grid."""
    op = node.op
    assert isinstance(op, Concat) and node.type is not None
    out = []
    for i, (j, k) in enumerate(op.sources([s.out for s in srcs])):
        src = srcs[int(j)]
        assert src.type is not None
        x = values[int(j)][int(k)]
        out.append(_requant(net, node, f"{node.name}_{i}", x, src.type.frac - node.type.frac, Rounding.FLOOR,
                            None, None))
    return out


# ops of several run-time inputs, given all of them
MULTI: dict[type, Callable[[Netlist, Node, list[Node], list[list[Value]]], list[Value]]] = {Add: _add2,
                                                                                             Concat: _concat}


# --- the whole design ---

def adder_bits(instances: list[dict]) -> int:
    """The bits the adders among `instances` compute (a shifted operand's low bits are wires)."""
    total = 0
    for i in instances:
        if i["module"] == "fpgaq_add":
            p = dict(i["params"])
            total += max(p["WO"] - p["SH"], 0)
    return total


def multiplier_dsps(instances: list[dict]) -> int:
    """DSP48E2s of the shared multipliers among `instances` that are meant for DSPs (the others,
    narrower or in a design without DSPs, are LUTs)."""
    total = 0
    for i in instances:
        p = dict(i["params"])
        if i["module"] == "fpgaq_rmul" and p["DSP"]:
            total += product_dsps(p["WX"] + (0 if p["SX"] else 1), p["WW"])   # an unsigned operand: a sign bit
    return total


# the flip-flops inside the clocked primitives: by module, the parameter holding their width
STATE_WIDTH = {"fpgaq_hold": "WO", "fpgaq_acc": "WO", "fpgaq_phase": "WP"}


def state_bits(instances: list[dict]) -> int:
    """Flip-flops of the held inputs, accumulators and phase counters among `instances`."""
    return sum(dict(i["params"])[STATE_WIDTH[i["module"]]] for i in instances if i["module"] in STATE_WIDTH)


def _port(name: str, n: int, t: FixedType, offset: int, origin: str) -> dict:
    return {"name": name, "n": n, "width": t.width, "signed": t.signed, "frac": t.frac,
            "bits": n * t.width, "offset": offset, "origin": origin}


def project_context(graph: Graph, config: BuildConfig, share: bool = True) -> dict:
    """Everything the templates need, as plain data. `share` False builds each neuron of a
    dense layer as its own adder tree (for comparison)."""
    net = Netlist(adder_budget(config.clock_ns), share=share, round_into=round_into_bias(graph))
    for reserved in ("clk", "rst", "in_valid", "in_ready", "in_take", "in_data", "out_valid", "out_data",
                     "valid_sr", "out_q", "gap_q"):
        net.taken.add(reserved)
    values: dict[str, list[Value]] = {}
    inputs, skip = [], graph.host | {q.name for q in graph.firmware_inputs}
    offset = 0
    for inp in graph.inputs:
        q = graph.input_quantizer(inp)
        t = q.type
        assert t is not None and q.interval is not None
        xs = []
        for i in range(q.size):
            v = net.new(f"{q.name}_{i}", q.interval, 0, 0.0)
            v.kind = t
            net.wires[-1].update(width=t.width, source=f"in_data[{offset + (i + 1) * t.width - 1}:{offset + i * t.width}]")
            xs.append(v)
        values[q.name] = xs
        inputs.append(_port(q.name, q.size, t, offset, comment(str(inp.origin))))
        offset += q.size * t.width
    layers = []
    for node in graph.nodes:
        if not node.inputs or node.name in skip:
            continue
        src = graph[node.inputs[0]]
        adders, mults, first = net.adders, net.multipliers, len(net.instances)
        if type(node.op) in MULTI and (len(node.inputs) > 1 or isinstance(node.op, Concat)):
            srcs = [graph[i] for i in node.inputs]
            values[node.name] = MULTI[type(node.op)](net, node, srcs, [values[i] for i in node.inputs])
        else:
            values[node.name] = KERNELS[type(node.op)](net, node, src, values[src.name])
        layers.append({"name": node.name, "op": type(node.op).__name__, "origin": comment(str(node.origin)),
                       "type": str(node.type), "range": str(node.interval),
                       "fused": isinstance(node.op, Quant) and node.op.relu,
                       # for the report: what this node added, and the stage its values are ready in
                       "adders": net.adders - adders, "adder_bits": adder_bits(net.instances[first:]),
                       "multipliers": net.multipliers - mults, "dsp": multiplier_dsps(net.instances[first:]),
                       "state_bits": state_bits(net.instances[first:]),
                       "reuse": node.op.reuse if isinstance(node.op, Dense) else 1,
                       "stage": max((v.stage for v in values[node.name] if v.const is None), default=0)})
    # outputs: every element delayed to the last stage, then one output register
    live = [v for o in graph.outputs for v in values[o] if v.const is None]
    last = max((v.stage for v in live), default=0)
    outputs, assigns = [], []
    offset = 0
    for j, name in enumerate(graph.outputs):
        node = graph[name]
        t = node.type
        assert t is not None
        outputs.append(_port(name, node.size, t, offset, comment(str(node.origin))))
        for i, v in enumerate(values[name]):
            assigns.append({"lsb": offset + i * t.width, "msb": offset + (i + 1) * t.width - 1,
                            "width": t.width, "source": net.at(v, last), "ws": v.width,
                            "ss": int(v.signed), "name": f"OUT{j}_{i}"})
        offset += node.size * t.width
    latency = last + 1
    return {
        "top": config.name, "model": comment(graph.name), "clock_ns": config.clock_ns,
        "budget": net.budget, "latency": latency, "adders": net.adders,
        "ii": net.ii, "ii_bits": max(1, (net.ii - 1).bit_length()), "multipliers": net.multipliers,
        "in_bits": sum(p["bits"] for p in inputs), "out_bits": sum(p["bits"] for p in outputs),
        "inputs": inputs, "outputs": outputs, "layers": layers,
        "wires": net.wires, "instances": net.instances, "registers": net.registers(),
        "assigns": assigns, "roundings": [{"name": r.name, "value": r.value} for r in Rounding],
    }
