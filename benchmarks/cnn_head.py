"""Why the depth-1 CNN of the Fashion-MNIST reference scored a median 0.20 (issue 21).

hpo's cnn ends in a global-average-pool head (models/layers.classifier_head). At depth 1
the single conv block's map is still 14x14 when the head averages it away: the linear
layer sees 16 numbers, each one channel's mean over the whole image, so the network is a
bag of 3x3 texture detectors with no spatial layout. This trains the same depth-1 block
(16 channels, 3x3 conv, BatchNorm, ReLU, 2x2 max pool) with that head and with one that
keeps a 4x4 grid before the linear layer, on the reference's data (3,000 Fashion-MNIST
training images, 4 epochs, Adam, batch 128), and reports test accuracy on 2,000 images.

    python3 benchmarks/cnn_head.py            # 2 learning rates x 2 seeds, ~1 min on 2 cores
    python3 benchmarks/cnn_head.py --quick    # 1 epoch, 1 seed
"""

from __future__ import annotations

import argparse

import _machine  # noqa: F401  (puts the project on sys.path)
import numpy as np
import torch
from _machine import banner, figure
from torch import nn

from hpo.training.datafiles import read_files

CHANNELS = 16
TRAIN, TEST = 3000, 2000
MEAN, STD = 0.286, 0.353  # Fashion-MNIST's pixel statistics


def depth1_cnn(grid: int, seed: int) -> nn.Sequential:
    """The depth-1 block, then average pooling to grid x grid, flatten, linear."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, CHANNELS, 3, padding=1, bias=False),
        nn.BatchNorm2d(CHANNELS),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(grid),
        nn.Flatten(),
        nn.Linear(CHANNELS * grid * grid, 10),
    )


def images(x: np.ndarray) -> torch.Tensor:
    return ((torch.tensor(x, dtype=torch.float32) / 255 - MEAN) / STD).reshape(-1, 1, 28, 28)


def accuracy(grid: int, lr: float, seed: int, epochs: int, data: tuple) -> float:
    x, y, x_test, y_test = data
    model = depth1_cnn(grid, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=order).split(128):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return (model(x_test).argmax(1) == y_test).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    epochs, seeds = (1, 1) if args.quick else (4, 2)
    torch.set_num_threads(1)
    (x_train, y_train), (x_test, y_test) = read_files("fashion-mnist", None)[:2]
    chosen = np.random.default_rng(0).choice(len(x_train), TRAIN, replace=False)
    data = (
        images(x_train[chosen]),
        torch.tensor(y_train[chosen]).long(),
        images(x_test[:TEST]),
        torch.tensor(y_test[:TEST]).long(),
    )
    print(banner("depth-1 CNN on Fashion-MNIST: global-average-pool head vs a 4x4 grid"))
    print(f"{TRAIN} training images, {epochs} epochs, test accuracy on {TEST} images")
    for grid in (1, 4):
        params = sum(p.numel() for p in depth1_cnn(grid, 0).parameters())
        every: list[float] = []
        for lr in (1e-3, 3e-3):
            scores = [accuracy(grid, lr, seed, epochs, data) for seed in range(seeds)]
            every += scores
            shown = " ".join(f"{score:.3f}" for score in scores)
            print(f"head pool {grid}x{grid} ({params:>5} params), lr {lr:g}: {shown}")
        figure(f"depth-1 CNN, head pool {grid}x{grid}: test accuracy", every)


if __name__ == "__main__":
    main()
