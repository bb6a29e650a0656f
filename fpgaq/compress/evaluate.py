"""Measure a plan the way `fpgaq build` would see it: write its QONNX model, import it and run
fpgaq's pass pipeline, run the bit-exact emulator on the data, and price the design with
fpgaq's own estimate (LUT, DSP, latency). Float references come from onnxruntime.

Metrics (higher is better, except the relative RMS error):
- accuracy: with labels, the share of inputs whose argmax is the label;
- agreement: without labels, for a classifier, the share whose argmax is the float model's;
- rms: for a regressor, the RMS of the error over the RMS of the float output.
A metric's drop is how much worse it is than the float model's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import emulate
from ..compile import compile_model
from ..config import BuildConfig
from ..estimate import estimate
from .floatnet import Net
from .plan import Plan, input_point, write_model

METRICS = ("accuracy", "agreement", "rms")


def hits(kind: str, y: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Per input: whether it counts as right (accuracy, agreement)."""
    if kind == "accuracy":
        assert labels is not None
        return np.argmax(y, axis=1) == labels
    return np.argmax(y, axis=1) == np.argmax(reference, axis=1)


def metric_value(kind: str, y: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> float:
    if kind == "rms":
        return relative_rms(y, reference)
    return float(np.mean(hits(kind, y, reference, labels)))


def paired_se(float_hits: np.ndarray, q_hits: np.ndarray) -> float:
    """The standard error of the drop (float - quantized share of hits) on these inputs, from the
    inputs the two disagree on (paired)."""
    n = len(float_hits)
    lost = int(np.sum(float_hits & ~q_hits))
    won = int(np.sum(~float_hits & q_hits))
    return float(np.sqrt(max(lost + won - (lost - won) ** 2 / n, 0.0))) / n


def relative_rms(y: np.ndarray, reference: np.ndarray) -> float:
    scale = float(np.sqrt(np.mean(reference * reference)))
    return float(np.sqrt(np.mean((y - reference) ** 2))) / (scale if scale > 0 else 1.0)


def drop(kind: str, value: float, float_value: float) -> float:
    """How much worse `value` is than the float model's (rounded: 0.98 - 0.97 is 0.01)."""
    return round(value - float_value if kind == "rms" else float_value - value, 12)


@dataclass
class Split:
    """One part of the calibration data: inputs, the float model's outputs (the original
    model's, for agreement) and logits (the network's, for the output error), labels."""
    x: np.ndarray
    original: np.ndarray
    logits: np.ndarray
    labels: np.ndarray | None


@dataclass
class Measured:
    metric: float                 # on the tuning part
    held_metric: float            # on the held-out part: reported only, the search never reads it
    se: float                     # the standard error of its drop (0 for the RMS error)
    error: float                  # relative RMS error of the logits on the tuning part
    lut: int
    ff: int
    dsp: int
    bram: float
    latency_cycles: int
    latency_ns: float
    bitops: int
    layers: dict[str, dict] = field(default_factory=dict)   # per ONNX node: lut, dsp, ff, latency

    def cost(self, dsp_cost: float) -> float:
        return self.lut + dsp_cost * self.dsp


class Evaluator:
    """Measures plans on the tuning part, and the held-out part for the report (emulating it
    costs a fraction of the compile both share)."""

    def __init__(self, net: Net, name: str, config: BuildConfig, kind: str, tune: Split, held: Split,
                 float_metric: tuple[float, float], positions: dict[str, int]):
        self.net, self.name, self.config, self.kind = net, name, config, kind
        self.tune, self.held = tune, held
        self.float_metric = float_metric        # (tuning, held-out)
        self.positions = positions
        self.float_hits = None if kind == "rms" else hits(kind, tune.logits, tune.original, tune.labels)

    def measure(self, plan: Plan) -> Measured:
        graph = compile_model(write_model(self.net, plan), self.name, self.config)
        (y,) = emulate.run(graph, self.tune.x)
        (y_held,) = emulate.run(graph, self.held.x)
        est = estimate(graph, self.config)
        t = est["total"]
        layers: dict[str, dict] = {}
        for row in est["layers"]:
            e = layers.setdefault(row["onnx_node"], {"lut": 0, "ff": 0, "dsp": 0, "latency_cycles": 0})
            for k in e:
                e[k] += row[k]
        se = 0.0 if self.float_hits is None else paired_se(
            self.float_hits, hits(self.kind, y, self.tune.original, self.tune.labels))
        return Measured(metric_value(self.kind, y, self.tune.original, self.tune.labels),
                        metric_value(self.kind, y_held, self.held.original, self.held.labels), se,
                        relative_rms(y, self.tune.logits), int(t["lut"]), int(t["ff"]), int(t["dsp"]),
                        float(t["bram"]), int(t["latency_cycles"]), float(t["latency_ns"]), self.bitops(plan), layers)

    def drop(self, value: float, held: bool = False) -> float:
        return drop(self.kind, value, self.float_metric[1 if held else 0])

    def bitops(self, plan: Plan) -> int:
        """Non-zero multiplications an inference x weight bits x input bits."""
        total = 0
        for layer in self.net.weighted:
            lq = plan.layers[layer.name]
            a = plan.acts[input_point(self.net, layer.inputs[0])]
            total += lq.nonzero * self.positions[layer.name] * lq.w_bits * a.bits
        return total
