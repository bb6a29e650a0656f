"""Float execution of a model with onnxruntime: the reference compress measures against."""
from __future__ import annotations

import numpy as np
import onnx

from ..errors import FpgaqError

INSTALL = "pip install 'fpgaq[compress]'"


def run_float(model: onnx.ModelProto, x: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """onnxruntime on a float model, graph optimisations off (they may reorder arithmetic)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise FpgaqError(f"fpgaq compress runs the float model with onnxruntime: {INSTALL}") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise FpgaqError(f"onnxruntime cannot run the float model ({str(e).splitlines()[0]}); check that it is a "
                         "valid ONNX model") from None
    name = session.get_inputs()[0].name
    shape = session.get_inputs()[0].shape
    x = np.asarray(x, dtype=np.float32).reshape((len(x),) + tuple(
        int(d) for d in shape[1:])) if all(isinstance(d, int) for d in shape[1:]) else np.asarray(x, np.float32)
    names = outputs or [o.name for o in session.get_outputs()]
    return {n: v.astype(np.float64) for n, v in zip(names, session.run(names, {name: x}))}
