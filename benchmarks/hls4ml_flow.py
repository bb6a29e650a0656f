"""hls4ml's documented QONNX flow, the one every benchmark here runs, and as a script the whole
process a user runs for a project: import hls4ml and qonnx, clean up, convert, write.

    python benchmarks/hls4ml_flow.py MODEL.onnx OUT_DIR [--strategy Latency]

It imports nothing of fpgaq, so that timing it as a process times hls4ml alone.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import warnings
from pathlib import Path

DEFAULT_PRECISION = "fixed<16,6>"        # hls4ml's default, used where the model gives no type


def hls4ml_clean(model: Path):
    """hls4ml's documented QONNX recipe: clean up, channels last, Gemm -> MatMul, clean up."""
    import qonnx.util.cleanup
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul

    m = qonnx.util.cleanup.cleanup_model(ModelWrapper(str(model)))
    m = m.transform(ConvertToChannelsLastAndClean())
    m = m.transform(GemmToMatMul())
    return qonnx.util.cleanup.cleanup_model(m)


def hls4ml_convert(model: Path, strategy: str, out: Path, input_precision: str | None = None,
                   io_type: str = "io_parallel"):
    import hls4ml

    m = hls4ml_clean(model)
    config = hls4ml.utils.config.config_from_onnx_model(m, granularity="name", backend="Vitis",
                                                        default_precision=DEFAULT_PRECISION)
    config["Model"]["Strategy"] = strategy
    if input_precision:
        config["LayerName"][m.graph.input[0].name]["Precision"]["result"] = input_precision
    hls_model = hls4ml.converters.convert_from_onnx_model(m, output_dir=str(out), io_type=io_type,
                                                          backend="Vitis", hls_config=config)
    hls_model.write()
    return hls_model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--strategy", default="Latency")
    args = ap.parse_args(argv)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        hls4ml_convert(Path(args.model), args.strategy, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
