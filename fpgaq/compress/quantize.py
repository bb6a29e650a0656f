"""From calibration statistics and a choice of bits and sparsity to a plan of exact numbers.

- Activations: for a width, the power-of-two scale whose clipping and rounding give the least
  squared error on the calibration values (a wider range clips less but rounds coarser).
- Weights: per layer, the power-of-two scale of least squared error on the kept weights,
  codes symmetric (narrow), pruned weights exactly zero.
- Pruning: structured first (whole neurons or channels, least important first: the RMS of the
  neuron's output over the calibration data times the norm of the weights reading it), then
  unstructured among the rest (the smallest |w| times the RMS of the input it multiplies, as in
  Wanda). A removed neuron keeps a constant output equal to its calibration mean, which fpgaq
  folds into the next layer: it costs nothing.
- Bias correction: each layer's bias absorbs the mean error its quantized, pruned weights make
  on the calibration inputs, b' = b - (Wq - W) E[x].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .floatnet import Layer, Net
from .plan import ActQuant, LayerQuant, Plan, input_point, quantized_points

SAMPLE = 200_000            # activation values an MSE search looks at
MAX_BIAS_BITS = 40


@dataclass(frozen=True)
class Choice:
    """One candidate: weight bits, structured and unstructured sparsity per weighted layer
    (in `Net.weighted` order), activation bits per quantized tensor (in `quantized_points`
    order)."""
    w_bits: tuple[int, ...]
    a_bits: tuple[int, ...]
    sparsity: tuple[float, ...]
    removed: tuple[float, ...]


@dataclass
class Stats:
    """What calibration measured on the float network (tuning part of the data)."""
    samples: dict[str, np.ndarray]     # quantized tensor -> a sample of its values
    signed: dict[str, bool]
    mean_in: dict[str, np.ndarray]     # weighted layer -> mean of its input per feature / channel
    rms_in: dict[str, np.ndarray]      # ... and RMS
    mean_out: dict[str, np.ndarray]    # weighted layer -> mean of its (post-ReLU) output per neuron
    rms_out: dict[str, np.ndarray]
    positions: dict[str, int]          # weighted layer -> output positions (1 for dense)


def per_channel(x: np.ndarray, fn) -> np.ndarray:
    """fn over all axes but the channel axis (1) of (N, C, ...)."""
    axes = (0,) + tuple(range(2, x.ndim))
    return fn(x, axes)


def collect_stats(net: Net, values: dict[str, np.ndarray]) -> Stats:
    """`values`: every quantized tensor and every weighted layer's input and output, float, on
    the tuning data."""
    rng = np.random.default_rng(0)
    samples, signed = {}, {}
    for t in quantized_points(net):
        v = values[t].reshape(-1)
        samples[t] = v if v.size <= SAMPLE else rng.choice(v, SAMPLE, replace=False)
        producer = net.producer(t)
        signed[t] = not (producer is not None and producer.op_type == "Relu") and bool(v.min() < 0)
    mean_in, rms_in, mean_out, rms_out, positions = {}, {}, {}, {}, {}
    for layer in net.weighted:
        x = values[layer.inputs[0]]
        mean_in[layer.name] = per_channel(x, lambda a, ax: a.mean(axis=ax))
        rms_in[layer.name] = per_channel(x, lambda a, ax: np.sqrt((a * a).mean(axis=ax)))
        y = values[after_relu(net, layer)]
        mean_out[layer.name] = per_channel(y, lambda a, ax: a.mean(axis=ax))
        rms_out[layer.name] = per_channel(y, lambda a, ax: np.sqrt((a * a).mean(axis=ax)))
        positions[layer.name] = int(np.prod(y.shape[2:])) if y.ndim > 2 else 1
    return Stats(samples, signed, mean_in, rms_in, mean_out, rms_out, positions)


def after_relu(net: Net, layer: Layer) -> str:
    users = net.consumers(layer.output)
    return users[0].output if len(users) == 1 and users[0].kind == "relu" else layer.output


def has_relu(net: Net, layer: Layer) -> bool:
    return after_relu(net, layer) != layer.output


def activation_quant(values: np.ndarray, bits: int, signed: bool) -> ActQuant:
    """The power-of-two scale of least squared error for `values` at `bits`."""
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    qmax = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    if peak == 0.0:
        return ActQuant(bits, bits - 1 if signed else bits, signed)
    f0 = int(np.floor(np.log2(qmax / peak)))
    best = min(range(f0, f0 + 5), key=lambda f: (_mse(values, ActQuant(bits, f, signed)), f))
    return ActQuant(bits, best, signed)


def _mse(values: np.ndarray, q: ActQuant) -> float:
    d = values - q.apply(values)
    return float(np.mean(d * d))


def weight_frac(w: np.ndarray, bits: int) -> int:
    """Fraction bits of least squared error for the kept (non-zero) weights, codes in
    -(2**(bits-1) - 1) .. 2**(bits-1) - 1."""
    kept = w[w != 0]
    if kept.size == 0:
        return 0
    qmax = (1 << (bits - 1)) - 1
    f0 = int(np.floor(np.log2(qmax / float(np.max(np.abs(kept))))))
    return min(range(f0, f0 + 4), key=lambda f: (float(np.sum((kept - _wq(kept, bits, f)) ** 2)), f))


def _wq(w: np.ndarray, bits: int, frac: int) -> np.ndarray:
    qmax = (1 << (bits - 1)) - 1
    return np.clip(np.round(w * 2.0 ** frac), -qmax, qmax) * 2.0 ** -frac


def structured_mask(net: Net, layer: Layer, stats: Stats, fraction: float) -> np.ndarray:
    """Output neurons (channels) kept: the least important `fraction` removed."""
    assert layer.weight is not None
    n = layer.weight.shape[0]
    k = int(np.floor(fraction * n))
    keep = np.ones(n, dtype=bool)
    if k == 0:
        return keep
    importance = stats.rms_out[layer.name] * _outgoing_norm(net, layer, n)
    keep[np.argsort(importance, kind="stable")[:k]] = False
    return keep


def _outgoing_norm(net: Net, layer: Layer, n: int) -> np.ndarray:
    """The norm of the weights that read each neuron, where the next weighted layer reads this
    one's neurons directly (through its ReLU); else ones."""
    users = net.consumers(after_relu(net, layer))
    if len(users) == 1 and users[0].weighted and users[0].weight is not None and users[0].weight.shape[1] == n \
            and int(users[0].attrs.get("group", 1)) == 1:
        w = users[0].weight
        return np.sqrt((w * w).sum(axis=tuple(j for j in range(w.ndim) if j != 1)))
    return np.ones(n)


def unstructured_mask(layer: Layer, stats: Stats, keep_rows: np.ndarray, fraction: float) -> np.ndarray:
    """Weights kept: among rows kept, the `fraction` (of all weights) least important removed,
    importance |w| times the RMS of its input."""
    w = layer.weight
    assert w is not None
    mask = np.broadcast_to(keep_rows.reshape((-1,) + (1,) * (w.ndim - 1)), w.shape).copy()
    k = int(np.floor(fraction * w.size)) - int((~mask).sum())
    if k <= 0:
        return mask
    importance = np.abs(w) * _input_scale(layer, stats.rms_in[layer.name])
    order = np.argsort(np.where(mask, importance, -1.0).reshape(-1), kind="stable")
    dead = int((~mask).sum())
    flat = mask.reshape(-1)
    flat[order[dead:dead + k]] = False
    return flat.reshape(w.shape)


def _input_scale(layer: Layer, per_input: np.ndarray) -> np.ndarray:
    """A per-input-channel vector laid over the weight's shape (groups of a conv included)."""
    w = layer.weight
    assert w is not None
    if layer.kind == "dense":
        return per_input.reshape(1, -1)
    groups = int(layer.attrs.get("group", 1))
    o, cg = w.shape[0], w.shape[1]
    idx = (np.arange(o) // (o // groups))[:, None] * cg + np.arange(cg)[None, :]
    return per_input[idx].reshape((o, cg) + (1,) * (w.ndim - 2))


def bias_shift(layer: Layer, dw: np.ndarray, mean_in: np.ndarray) -> np.ndarray:
    """The mean change of each output that a weight change `dw` makes on inputs of mean
    `mean_in` (a convolution's borders, padded with zeros, aside)."""
    scaled = dw * _input_scale(layer, mean_in)
    return scaled.reshape(dw.shape[0], -1).sum(axis=1)


def make_plan(net: Net, stats: Stats, choice: Choice, points: list[str] | None = None) -> Plan:
    """The exact numbers of `choice`."""
    points = points or quantized_points(net)
    acts = {t: activation_quant(stats.samples[t], bits, stats.signed[t]) for t, bits in zip(points, choice.a_bits)}
    layers = {}
    for layer, bits, sparsity, removed in zip(net.weighted, choice.w_bits, choice.sparsity, choice.removed):
        assert layer.weight is not None and layer.bias is not None
        w, b = layer.weight, layer.bias.copy()
        rows = structured_mask(net, layer, stats, removed) if removed and has_relu(net, layer) else \
            np.ones(w.shape[0], dtype=bool)
        mask = unstructured_mask(layer, stats, rows, sparsity)
        kept = np.where(mask, w, 0.0)
        frac = weight_frac(kept, bits)
        wq = np.where(mask, _wq(kept, bits, frac), 0.0)
        b = b - bias_shift(layer, wq - w, stats.mean_in[layer.name])
        # a removed neuron gives its mean (its bias alone, through its ReLU)
        b[~rows] = stats.mean_out[layer.name][~rows]
        acc_frac = acts[input_point(net, layer.inputs[0])].frac + frac
        layers[layer.name] = _with_bias(wq, bits, frac, True, b, acc_frac)
    return Plan(acts, layers)


def _with_bias(wq: np.ndarray, bits: int, frac: int, narrow: bool, b: np.ndarray, b_frac: int,
               b_type: ActQuant | None = None) -> LayerQuant:
    if b_type is not None:
        bq = b_type.apply(b)
        return LayerQuant(wq, bits, frac, narrow, bq, b_type.bits, b_type.frac)
    codes = np.round(b * 2.0 ** b_frac)
    peak = int(np.max(np.abs(codes))) if codes.size else 0
    b_bits = min(max(peak.bit_length() + 1, 2), MAX_BIAS_BITS)
    lim = (1 << (b_bits - 1)) - 1
    return LayerQuant(wq, bits, frac, narrow, np.clip(codes, -lim, lim) * 2.0 ** -b_frac, b_bits, b_frac)


def uniform_plan(net: Net, q: ActQuant, points: list[str] | None = None) -> Plan:
    """hls4ml's one precision for everything: every tensor, weight and bias of type `q`,
    activations truncated (ap_fixed's default AP_TRN) and saturated, weights and biases rounded."""
    points = points or quantized_points(net)
    truncating = ActQuant(q.bits, q.frac, q.signed, "FLOOR")
    acts = {t: truncating for t in points}
    layers = {}
    for layer in net.weighted:
        assert layer.weight is not None and layer.bias is not None
        wq = ActQuant(q.bits, q.frac, True).apply(layer.weight)
        layers[layer.name] = _with_bias(wq, q.bits, q.frac, False, layer.bias, q.frac, ActQuant(q.bits, q.frac, True))
    return Plan(acts, layers)
