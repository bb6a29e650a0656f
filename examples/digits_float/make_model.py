"""Train and export the float models of the `fpgaq compress` example: plain PyTorch networks
on scikit-learn's 8 x 8 handwritten digits, exported with `torch.onnx.export` as they come
(float weights, no quantizers): the MLP with the TorchScript exporter (a BatchNormalization
node, Identity nodes), the CNN with the dynamo exporter (batch-norm folded into the conv).

    digits_mlp.onnx   64 -> Linear 64 -> BatchNorm1d -> ReLU -> Linear 32 -> ReLU -> Linear 10
    digits_cnn.onnx   1 x 8 x 8 -> Conv 3x3 (8) -> BatchNorm2d -> ReLU -> MaxPool 2
                      -> Conv 3x3 (16) -> ReLU -> MaxPool 2 -> Flatten -> Linear 10

Data (`load_digits`, shipped with scikit-learn: nothing is downloaded), pixels scaled to
[0, 1], split once with seed 0 into

    1,000 digits to train on (not written),
      500 calibration digits  calib_inputs.npy, calib_labels.npy  (what compress may look at)
      297 test digits         test_inputs.npy, test_labels.npy    (what nobody tunes on)

Inputs are written flat (N x 64); the CNN reads them as N x 1 x 8 x 8 (fpgaq and compress
reshape a flat input). Run by hand (never in CI), with torch==2.13.0 (CPU), onnxscript and
scikit-learn; it takes a few seconds on one thread with fixed seeds:

    python examples/digits_float/make_model.py
"""
from pathlib import Path

import numpy as np
import onnx
import torch
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
N_TRAIN, N_CALIB = 1000, 500


def split() -> dict[str, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    train, calib, test = np.split(order, [N_TRAIN, N_TRAIN + N_CALIB])
    return {"x_train": x[train], "y_train": y[train], "x_calib": x[calib], "y_calib": y[calib],
            "x_test": x[test], "y_test": y[test]}


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64), torch.nn.ReLU(),
            torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(16 * 2 * 2, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    xt, yt = torch.tensor(x), torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()


def export(model: torch.nn.Module, example: torch.Tensor, path: Path, dynamo: bool) -> None:
    """The dynamo exporter (torch's default) folds batch-norms into the layer before; the
    TorchScript one with constant folding off keeps BatchNormalization nodes and Identity
    nodes on the initializers: the two forms compress meets."""
    options = dict(external_data=False) if dynamo else dict(do_constant_folding=False)
    torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=dynamo, **options)
    onnx.checker.check_model(onnx.load(str(path)))


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.tensor(x)).argmax(1).numpy() == y).mean())


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    d = split()
    mlp = MLP()
    train(mlp, d["x_train"], d["y_train"], 60)
    export(mlp, torch.tensor(d["x_test"][:2]), HERE / "digits_mlp.onnx", dynamo=False)
    cnn = CNN()
    img = lambda x: x.reshape(-1, 1, 8, 8)        # noqa: E731
    train(cnn, img(d["x_train"]), d["y_train"], 40)
    export(cnn, torch.tensor(img(d["x_test"][:2])), HERE / "digits_cnn.onnx", dynamo=True)
    for name in ("calib", "test"):
        np.save(HERE / f"{name}_inputs.npy", d[f"x_{name}"])
        np.save(HERE / f"{name}_labels.npy", d[f"y_{name}"].astype(np.int64))
    print(f"float test accuracy: MLP {accuracy(mlp, d['x_test'], d['y_test']):.4f}, "
          f"CNN {accuracy(cnn, img(d['x_test']), d['y_test']):.4f}")


if __name__ == "__main__":
    main()
