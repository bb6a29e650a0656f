"""`fpgaq compress`: from a float model and calibration data to a fixed-point QONNX model that
`fpgaq build` takes as it is, and a report of what was chosen and what it costs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from ..config import BuildConfig
from ..errors import FpgaqError
from ..ir.fixed import FixedType
from ..frontend.model_file import load
from ..progress import step
from .evaluate import METRICS, Evaluator, Split, metric_value
from .reference import run_float
from .floatnet import Net, read_net
from .plan import ActQuant, quantized_points, write_model
from .quantize import collect_stats, has_relu, uniform_plan
from .report import report_data
from .search import Search

MIN_INPUTS = 10
BASELINE = "fixed<16,6>"


def check_calibration(net: Net, x: np.ndarray, where: str) -> np.ndarray:
    """Batch-first inputs of the model's input shape (or flattened), finite, at least a few."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise FpgaqError(f"{where}: calibration data must be numbers, got dtype {x.dtype}")
    want = net.input_shape
    size = int(np.prod(want))
    shown = ", ".join(["N", *map(str, want)])
    if x.ndim < 1 or (tuple(x.shape[1:]) != want and not (x.ndim >= 2 and int(np.prod(x.shape[1:])) == size)):
        raise FpgaqError(f"{where}: calibration data of shape {tuple(x.shape)}, but the model's input "
                         f"'{net.input}' takes ({shown}); give one row an input, batch first")
    if len(x) < MIN_INPUTS:
        raise FpgaqError(f"{where}: {len(x)} calibration inputs; compress needs at least {MIN_INPUTS} (some "
                         "hundreds give a trustworthy held-out measure)")
    x = x.astype(np.float64).reshape((len(x),) + want)
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad.reshape(len(x), -1))[0])
        raise FpgaqError(f"{where}: calibration data holds NaN or infinity in {len(rows)} input(s) (the first is "
                         f"row {int(rows[0])}); remove or fix them")
    return x


def check_labels(y: np.ndarray, n: int, classes: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise FpgaqError(f"{where}: labels of shape {tuple(y.shape)} do not match {n} calibration inputs; give one "
                         "integer class an input")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise FpgaqError(f"{where}: labels must be integer classes")
    if y.dtype.kind not in "fiu":
        raise FpgaqError(f"{where}: labels must be integer classes, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= classes:
        raise FpgaqError(f"{where}: labels run from {int(y.min())} to {int(y.max())}, but the model has {classes} "
                         f"outputs (classes 0 .. {classes - 1})")
    return y


def _metric_kind(net: Net, metric: str | None, labels: np.ndarray | None, width: int) -> tuple[str, str]:
    if metric is not None:
        if metric not in METRICS:
            raise FpgaqError(f"--metric {metric}: choose one of {', '.join(METRICS)}")
        if metric == "accuracy" and labels is None:
            raise FpgaqError("--metric accuracy needs --labels")
        return metric, "as asked"
    if labels is not None:
        return "accuracy", "labels given"
    if net.dropped_softmax is not None:
        return "agreement", f"no labels; a classifier (Softmax '{net.dropped_softmax}')"
    if width > 1:
        return "agreement", f"no labels; {width} outputs, read as class scores (--metric rms for a regressor)"
    return "rms", "no labels; one output, a regressor"


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _float_values(model: onnx.ModelProto, net: Net, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The original model's outputs, and the network's tensors, which must agree with them."""
    original = run_float(model, x)
    (out,) = original.values()
    out = out.reshape(len(x), -1)
    wanted = sorted({*quantized_points(net), *(la.inputs[0] for la in net.weighted),
                     *(la.output for la in net.layers)} - {net.input, net.output})
    values = run_float(write_model(net, None, wanted), x, [net.output, *wanted])
    values[net.input] = x
    logits = values[net.output].reshape(len(x), -1)
    mine = _softmax(logits) if net.dropped_softmax is not None else logits
    if not np.allclose(mine, out, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(out).max()))):
        raise FpgaqError("the folded network does not reproduce the float model's outputs (largest difference "
                         f"{float(np.abs(mine - out).max()):.3g}); please report this model")
    return out, values


def compress(model_path: str | Path, calib: np.ndarray, *, labels: np.ndarray | None = None, max_drop: float = 0.01,
             prune: bool = False, uniform: str | None = None, output: str | Path, config: BuildConfig | None = None,
             seed: int = 0, holdout: float = 0.2, metric: str | None = None, dsp_cost: float = 55.0,
             max_latency_ns: float | None = None) -> dict:
    """Compress the float model at `model_path` into the QONNX model `output`; the report's data."""
    config = config or BuildConfig()
    if not 0.0 <= max_drop < 1.0:
        raise FpgaqError(f"--max-drop {max_drop}: give a fraction such as 0.01 (one point)")
    if max_latency_ns is not None and not max_latency_ns > 0:
        raise FpgaqError(f"--max-latency-ns {max_latency_ns}: give a positive time in ns")
    if not 0.0 < holdout < 1.0:
        raise FpgaqError(f"--holdout {holdout}: give a fraction such as 0.2")
    model = load(model_path)
    net = read_net(model)
    x = check_calibration(net, calib, "--calib")
    original, values = _float_values(model, net, x)
    width = original.shape[1]
    if labels is not None:
        labels = check_labels(labels, len(x), width, "--labels")
    kind, why = _metric_kind(net, metric, labels, width)
    order = np.random.default_rng(seed).permutation(len(x))
    n_held = max(1, int(round(holdout * len(x))))
    held_i, tune_i = np.sort(order[:n_held]), np.sort(order[n_held:])
    logits = values[net.output].reshape(len(x), -1)

    def split(idx: np.ndarray) -> Split:
        return Split(x[idx], original[idx], logits[idx], None if labels is None else labels[idx])

    tune, held = split(tune_i), split(held_i)
    stats = collect_stats(net, {k: v[tune_i] for k, v in values.items()})
    float_metric = (metric_value(kind, tune.logits, tune.original, tune.labels),
                    metric_value(kind, held.logits, held.original, held.labels))
    ev = Evaluator(net, Path(model_path).stem, config, kind, tune, held, float_metric, stats.positions)
    points = quantized_points(net)
    try:
        base_type = FixedType.parse(uniform or BASELINE)
    except ValueError as e:
        raise FpgaqError(f"--uniform: {e}") from None
    base_q = ActQuant(base_type.width, base_type.frac, base_type.signed)
    uniform_p = uniform_plan(net, base_q, points)
    with step("compress: uniform baseline"):
        uniform_m = ev.measure(uniform_p)
    search = None
    if uniform is not None:
        chosen_plan, chosen_m = uniform_p, uniform_m
    else:
        prunable = [has_relu(net, la) for la in net.weighted]
        with step("compress: sensitivity and search", total=None, unit="designs") as s:
            search = Search(net, stats, points, ev, max_drop=max_drop, prune=prune, dsp_cost=dsp_cost,
                            prunable=prunable, max_latency_ns=max_latency_ns, progress=lambda done, phase: s.update(done=done, detail=phase))
            s.update(total=search.budget())
            _, chosen = search.run()
        chosen_plan, chosen_m = search.plan(chosen.state), chosen.measured
    out = Path(output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(write_model(net, chosen_plan), str(out))
    except OSError as e:
        raise FpgaqError(f"-o {out}: cannot write ({e.strerror or e})") from None
    return report_data(
        model=str(model_path), output=str(out), net=net, kind=kind, why=why, max_drop=max_drop, prune=prune,
        seed=seed, sizes=(len(tune_i), len(held_i)), float_metric=float_metric, evaluator=ev, search=search,
        uniform=(uniform or BASELINE, uniform_p, uniform_m), chosen=(chosen_plan, chosen_m), dsp_cost=dsp_cost,
        max_latency_ns=max_latency_ns)
