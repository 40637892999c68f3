"""Write the small data files of the ready-made own-data studies from scikit-learn's bundled
sets (no download): `python studies/data/make.py` rewrites them, byte for byte the same.

- wine.csv: the 178 wines, 13 numeric columns and the label column `cultivar`.
- digits.npz: the 1797 8x8 digits as uint8 images x_train (N, 8, 8) and labels y_train.
- digit-images/<zero|one|two>/*.png: 20 grayscale 8x8 digits per class.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits, load_wine

HERE = Path(__file__).parent
PER_CLASS = 20
NAMES = ("zero", "one", "two")


def main() -> None:
    wine = load_wine()
    with (HERE / "wine.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*wine.feature_names, "cultivar"])
        for row, label in zip(wine.data, wine.target, strict=True):
            writer.writerow([*(f"{value:g}" for value in row), wine.target_names[label]])
    digits = load_digits()
    pixels = (digits.images * 15).astype(np.uint8)  # 0..16 -> 0..240
    np.savez_compressed(HERE / "digits.npz", x_train=pixels, y_train=digits.target)
    for label, name in enumerate(NAMES):
        folder = HERE / "digit-images" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(np.flatnonzero(digits.target == label)[:PER_CLASS]):
            Image.fromarray(pixels[index]).save(folder / f"{i:02d}.png", optimize=True)


if __name__ == "__main__":
    main()
