"""Train and export the digits TFC example: Brevitas' BNN-PYNQ FC network (2-bit weights,
2-bit activations, float batch-norms, a TensorNorm on the logits, the `x * 2 - 1`
pre-processing in its forward) at the size of scikit-learn's 8 x 8 handwritten digits, trained
on them, then a Softmax. Exported with Brevitas' `export_qonnx`, exactly as a FINN user would.

Run by hand (never in CI), with torch==2.13.0 (CPU), brevitas==0.13.4, onnxscript and
scikit-learn; it takes about half a minute and writes:

  digits_tfc.onnx (+ .onnx.data)  the model
  test_inputs.npy, test_labels.npy  the held-out digits (1 x 8 x 8 in [0, 1]) and their classes
  test_outputs.npy                  PyTorch's probabilities for them

    python examples/digits_tfc/make_model.py
"""
from pathlib import Path

import numpy as np
import torch
from brevitas.export import export_qonnx
from brevitas_examples.bnn_pynq.models.FC import FC
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


class WithSoftmax(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=-1)


def main() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]          # 1 x 8 x 8, in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=0)
    net = FC(num_classes=10, weight_bit_width=2, act_bit_width=2, in_bit_width=2, in_channels=1,
             out_features=[64, 64], in_features=(8, 8))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
    for epoch in range(60):
        net.train()
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            batch = order[i:i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch])
            loss.backward()
            opt.step()
    model = WithSoftmax(net).eval()
    with torch.no_grad():
        p = model(torch.from_numpy(x_test)).numpy()
    print(f"PyTorch accuracy on {len(x_test)} held-out digits: {np.mean(p.argmax(1) == y_test):.4f}")
    np.save(HERE / "test_inputs.npy", x_test)
    np.save(HERE / "test_labels.npy", y_test.astype(np.int64))
    np.save(HERE / "test_outputs.npy", p)
    export_qonnx(model, torch.from_numpy(x_test[:1]), str(HERE / "digits_tfc.onnx"))


if __name__ == "__main__":
    main()
