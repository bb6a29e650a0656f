"""Make the scale model of compare_hls4ml_cnn.py: a CIFAR-sized Brevitas CNN of about 100k
weights, half of them pruned, exported with Brevitas' `export_qonnx` (issue 10, point 7).

    input 3 x 32 x 32          QuantIdentity, 8-bit signed, power-of-two scale
    conv1 3x3, 3 -> 16, pad 1  QuantConv2d, 6-bit weights (power-of-two scale), 16-bit bias
    QuantReLU, MaxPool2d(2)    4-bit unsigned; 16 x 16 x 16
    conv2 3x3, 16 -> 32, pad 1 4-bit weights, 16-bit bias; QuantReLU 4-bit; MaxPool2d(2): 32 x 8 x 8
    conv3 3x3, 32 -> 64, pad 1 4-bit weights, 16-bit bias; QuantReLU 4-bit; MaxPool2d(2): 64 x 4 x 4
    Flatten, QuantLinear       1024 -> 72, 4-bit weights, 16-bit bias; QuantReLU 4-bit
    QuantLinear                72 -> 10 logits, 6-bit weights, 16-bit bias (no output quantizer)

97,920 weights (432 + 4,608 + 18,432 + 73,728 + 720), of which half (by magnitude, per layer)
are set to zero. The weights are random (He-scaled normal, fixed seed), not trained: the model
is for timing and bit-exactness, not accuracy. It prints the weight counts per layer.

Run by hand when the model should change (the benchmark runs it when the file is missing), with
torch==2.13.0 (CPU), brevitas==0.13.4, onnxscript; it takes seconds and writes one file (weights
inside, any batch size):

    python benchmarks/models/make_cnn100k.py [--out benchmarks/models/cnn100k.onnx]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import onnx
import torch
from brevitas.export import export_qonnx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias
from brevitas.quant import Uint8ActPerTensorFixedPoint

HERE = Path(__file__).resolve().parent
OUT = HERE / "cnn100k.onnx"
SEED = 20261130
SPARSITY = 0.5
SHAPE = (3, 32, 32)


def weights(bits: int) -> dict:
    return dict(weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=bits, bias=True, bias_quant=Int16Bias)


def relu4() -> QuantReLU:
    return QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4, return_quant_tensor=True)


class Cnn100k(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.conv1 = QuantConv2d(3, 16, 3, padding=1, return_quant_tensor=True, **weights(6))
        self.conv2 = QuantConv2d(16, 32, 3, padding=1, return_quant_tensor=True, **weights(4))
        self.conv3 = QuantConv2d(32, 64, 3, padding=1, return_quant_tensor=True, **weights(4))
        self.relus = torch.nn.ModuleList(relu4() for _ in range(4))
        self.pool = torch.nn.MaxPool2d(2)
        self.fc1 = QuantLinear(64 * 4 * 4, 72, return_quant_tensor=True, **weights(4))
        self.fc2 = QuantLinear(72, 10, **weights(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        for conv, relu in zip((self.conv1, self.conv2, self.conv3), self.relus):
            x = self.pool(relu(conv(x)))
        x = self.relus[3](self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def layers(net: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in net.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))]


def randomize_and_prune(net: torch.nn.Module) -> None:
    """He-scaled random weights and small biases; the smaller half of each layer's weights zero."""
    with torch.no_grad():
        for _, m in layers(net):
            fan_in = m.weight[0].numel()
            w = torch.randn_like(m.weight) * math.sqrt(2.0 / fan_in)
            cut = w.abs().flatten().kthvalue(int(SPARSITY * w.numel())).values
            m.weight.copy_(w * (w.abs() > cut))
            m.bias.copy_(torch.randn_like(m.bias) * 0.1)
    net.eval()


def weight_counts(net: torch.nn.Module) -> list[tuple[str, int, int]]:
    """(layer, weights, non-zero weights)."""
    return [(n, m.weight.numel(), int(torch.count_nonzero(m.weight))) for n, m in layers(net)]


def export(net: torch.nn.Module, path: Path) -> None:
    """QONNX, one file (weights inside), any batch size."""
    x = torch.zeros((1,) + SHAPE)
    export_qonnx(net, x, str(path), input_names=["x"], output_names=["y"],
                 dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    model = onnx.load(path)
    onnx.save(model, path)
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()


def make(path: Path = OUT) -> list[tuple[str, int, int]]:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    net = Cnn100k()
    randomize_and_prune(net)
    export(net, path)
    return weight_counts(net)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    counts = make(ap.parse_args().out)
    for name, n, nz in counts:
        print(f"{name:6s} {n:7,d} weights, {nz:7,d} non-zero")
    total, nonzero = sum(c[1] for c in counts), sum(c[2] for c in counts)
    print(f"total  {total:7,d} weights, {nonzero:7,d} non-zero ({1 - nonzero / total:.0%} pruned)")


if __name__ == "__main__":
    main()
