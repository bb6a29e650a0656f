"""Train, prune and export the digits CNN example: a small Brevitas CNN on scikit-learn's 8 x 8
handwritten digits, exported with Brevitas' `export_qonnx`.

    input 1 x 8 x 8 in [0, 1]  QuantIdentity, 8-bit unsigned, power-of-two scale
    conv1 3x3, 1 -> C1, pad 1  QuantConv2d, 4-bit weights (power-of-two scale), no bias
    BatchNorm2d(C1)            float, trained statistics
    QuantReLU                  4-bit unsigned, power-of-two scale
    MaxPool2d(2)               C1 x 4 x 4
    conv2 3x3, C1 -> C2, pad 1 QuantConv2d, 4-bit weights, 16-bit bias
    QuantReLU                  4-bit unsigned
    MaxPool2d(2)               C2 x 2 x 2
    Flatten, QuantLinear       -> 10 logits, 4-bit weights, 16-bit bias (no output quantizer)

Trained with Adam, then magnitude-pruned (half of each conv's and the linear layer's weights
set to zero, by absolute value, per layer) and fine-tuned with the zeros held.

Run by hand (never in CI), with torch==2.13.0 (CPU), brevitas==0.13.4, onnxscript and
scikit-learn; it takes well under a minute, uses fixed seeds and one thread, and writes:

  digits_cnn.onnx                    the model (weights inside the file)
  test_inputs.npy, test_labels.npy   the 360 held-out digits (1 x 8 x 8 in [0, 1]) and classes
  test_outputs.npy                   PyTorch's logits for them

    python examples/digits_cnn/make_model.py
"""
from pathlib import Path

import numpy as np
import onnx
import torch
from brevitas.export import export_qonnx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8WeightPerTensorFixedPoint, Int16Bias, Uint8ActPerTensorFixedPoint
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
C1, C2 = 4, 8
SPARSITY = 0.5
W = dict(weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=4)
RELU4 = dict(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4, return_quant_tensor=True)


class DigitsCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = QuantIdentity(act_quant=Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.conv1 = QuantConv2d(1, C1, 3, padding=1, bias=False, **W)
        self.bn1 = torch.nn.BatchNorm2d(C1)
        self.relu1 = QuantReLU(**RELU4)
        self.pool1 = torch.nn.MaxPool2d(2)
        self.conv2 = QuantConv2d(C1, C2, 3, padding=1, bias=True, bias_quant=Int16Bias, return_quant_tensor=True, **W)
        self.relu2 = QuantReLU(**RELU4)
        self.pool2 = torch.nn.MaxPool2d(2)
        self.fc = QuantLinear(C2 * 2 * 2, 10, bias=True, bias_quant=Int16Bias, **W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.bn1(self.conv1(self.inp(x)))))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


def prunable(net: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [net.conv1.weight, net.conv2.weight, net.fc.weight]


def train(net, xt, yt, epochs: int, lr: float, masks=None) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            batch = order[i:i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch])
            loss.backward()
            opt.step()
            if masks is not None:
                with torch.no_grad():
                    for w, m in zip(prunable(net), masks):
                        w.mul_(m)


def accuracy(net, x, y) -> float:
    net.eval()
    with torch.no_grad():
        return float(np.mean(net(torch.from_numpy(x)).numpy().argmax(1) == y))


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]          # 1 x 8 x 8, in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=0)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
    net = DigitsCNN()
    train(net, xt, yt, epochs=60, lr=0.01)
    print(f"dense:  PyTorch accuracy on {len(x_test)} held-out digits: {accuracy(net, x_test, y_test):.4f}")
    masks = []
    with torch.no_grad():
        for w in prunable(net):
            k = int(SPARSITY * w.numel())
            cut = w.abs().flatten().kthvalue(k).values
            m = (w.abs() > cut).float()
            w.mul_(m)
            masks.append(m)
    print(f"pruned: PyTorch accuracy before fine-tuning: {accuracy(net, x_test, y_test):.4f}")
    train(net, xt, yt, epochs=30, lr=0.003, masks=masks)
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(x_test)).numpy()
    print(f"pruned: PyTorch accuracy after fine-tuning: {np.mean(logits.argmax(1) == y_test):.4f}")
    np.save(HERE / "test_inputs.npy", x_test)
    np.save(HERE / "test_labels.npy", y_test.astype(np.int64))
    np.save(HERE / "test_outputs.npy", logits)
    path = HERE / "digits_cnn.onnx"
    export_qonnx(net, torch.from_numpy(x_test[:1]), str(path), input_names=["x"], output_names=["y"],
                 dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})            # any batch size
    model = onnx.load(path)                                          # one file: weights inside
    onnx.save(model, path)
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()


if __name__ == "__main__":
    main()
