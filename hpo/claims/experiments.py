"""The lectures' claims as fixed experiments: what each trains, what varies, what it measures.

A claim is a small grid of *variants* (full run configurations as plain JSON-able dicts)
crossed with seeds; nothing is sampled. `claims(size)` lists them in report order. The
`quick` size keeps every variant the analysis needs but trains for a few epochs on smaller
grids: it exercises the whole path in seconds, and its verdicts mean little.

A variant's keys (read by hpo.claims.run):

    data, max_train          data set (hpo.training.data) and the cap on its training split
    model                    "layered" (widths per layer) or "mlp" (depth x width)
    widths | depth, width    the architecture
    activation, init         init: one of models.INITS, or a textbook scheme (naive, xavier,
                             he: models.textbook, the rules as taught, without activation gain)
    batchnorm, dropout
    optimizer, lr, momentum, batch_size, epochs
    boundary                 record the decision boundary (2-D data only)
    setting                  which of a claim's settings the variant belongs to
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hpo.errors import HpoError

SIZES = ("full", "quick")
STUDY_PREFIX = "claims"  # studies are claims-NAME (full) or claims-quick-NAME
RINGS_WIDTHS = [32, 32, 16]  # the lectures' rings network: 2 -> 32 -> 32 -> 16 -> 1
MAX_SEEDS = 1000  # seed params are stored with a fixed range, so Optuna accepts more later


@dataclass(frozen=True)
class Run:
    """One training run: a variant with its seed."""

    claim: str
    key: str  # unique within the claim: the varied values and the seed, e.g. "lr=0.1 seed=2"
    params: dict[str, Any]  # the varied values and the seed: the trial's params
    config: dict[str, Any]  # everything the run is, seed included


@dataclass(frozen=True)
class Claim:
    name: str  # short id; the study is claims-NAME
    title: str
    statement: str  # what the lectures say, as the report quotes it
    axes: tuple[str, ...]  # the config keys that vary between variants (the trial params)
    variants: tuple[dict[str, Any], ...]

    def runs(self, seeds: int) -> list[Run]:
        """Every variant x seed, seeds outermost: an interrupted run stays balanced."""
        out = []
        for seed in range(seeds):
            for variant in self.variants:
                params = {axis: variant[axis] for axis in self.axes} | {"seed": seed}
                key = " ".join(f"{k}={v}" for k, v in params.items())
                out.append(Run(self.name, key, params, {**variant, "seed": seed}))
        return out

    def values(self, axis: str) -> list[Any]:
        """The values `axis` takes, in first-seen order."""
        return list(dict.fromkeys(v[axis] for v in self.variants))


def study_name(claim: str, size: str) -> str:
    return f"{STUDY_PREFIX}-{claim}" if size == "full" else f"{STUDY_PREFIX}-{size}-{claim}"


def check_options(size: str, seeds: int) -> None:
    """HpoError, one line, on a size or seed count the claims cannot run with."""
    if size not in SIZES:
        raise HpoError(f"unknown size {size!r}; choose one of: {', '.join(SIZES)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise HpoError(f"--seeds must be between 1 and {MAX_SEEDS}, got {seeds}")


def _grid(base: Mapping[str, Any], **axes: list[Any]) -> Iterator[dict[str, Any]]:
    """`base` with every combination of the `axes` values, the first axis outermost."""
    for combo in itertools.product(*axes.values()):
        yield {**base, **dict(zip(axes, combo, strict=True))}


RINGS_NET = {"data": "rings", "max_train": None, "model": "layered", "widths": RINGS_WIDTHS}
RINGS_NET |= {"activation": "relu", "init": "default", "batchnorm": False, "dropout": 0.0}
RINGS_NET |= {"optimizer": "sgd", "momentum": 0.9, "batch_size": 64, "boundary": False}


def claims(size: str = "full") -> list[Claim]:
    """The five claims, in report order, for `size` (full or quick)."""
    quick = size == "quick"
    epochs = (lambda n: 2) if quick else (lambda n: n)

    # 1. Plain SGD with momentum, as in the lectures: Adam hides much of what BatchNorm does.
    rings = {**RINGS_NET, "lr": 0.01, "epochs": epochs(40), "boundary": True}
    rings_bn = Claim(
        "rings-batchnorm",
        "The rings network with and without BatchNorm",
        "BatchNorm makes the concentric-rings network [2 -> 32 -> 32 -> 16 -> 1] train "
        "faster: it reaches a good validation accuracy in fewer epochs, and ends at least "
        "as accurate.",
        ("batchnorm",),
        tuple(_grid(rings, batchnorm=[False, True])),
    )

    # 2. Xavier with each activation's gain (models.init_weights), so that every activation
    # starts from its recommended scale and only the activation's derivative differs.
    deep = {**RINGS_NET, "model": "mlp", "width": 32, "init": "xavier_normal"}
    deep |= {"optimizer": "adam", "lr": 1e-3, "epochs": epochs(20)}
    del deep["widths"]
    vanishing = Claim(
        "vanishing-gradients",
        "Vanishing gradients: first-layer gradient against depth",
        "With sigmoid the gradient reaching the first layer shrinks rapidly as the network "
        "gets deeper (vanishing gradients); ReLU keeps it, tanh is in between.",
        ("activation", "depth"),
        tuple(
            _grid(
                deep,
                activation=["sigmoid", "tanh", "relu"],
                depth=[2, 4] if quick else [2, 4, 8, 12, 16],
            )
        ),
    )

    # 3. Ten layers of 64: deep enough for a factor per layer to compound into decades.
    init = {**deep, "depth": 3 if quick else 10, "width": 64}
    initialisation = Claim(
        "initialisation",
        "Initialisation: activation scale across depth",
        "N(0, 1) weights make ReLU activations explode with depth and saturate tanh; Xavier "
        "keeps tanh's activations at a steady scale, He keeps ReLU's (Xavier lets ReLU's "
        "shrink).",
        ("activation", "init"),
        tuple(_grid(init, activation=["relu", "tanh"], init=["naive", "xavier", "he"])),
    )

    # 4. Two settings: the lectures' rings network, and a deeper MLP on digits, where the
    # effect has more layers to act on. Quarter-decade steps of lr.
    lrs = [0.01, 1.0] if quick else [round(10 ** (k / 4 - 2), 4) for k in range(11)]
    rings_lr = {**RINGS_NET, "lr": 0.01, "epochs": epochs(20), "setting": "rings"}
    digits_lr = {**rings_lr, "data": "digits", "model": "mlp", "depth": 6, "width": 64}
    digits_lr |= {"init": "he_normal", "epochs": epochs(15), "setting": "digits"}
    del digits_lr["widths"]
    bn_lr = Claim(
        "batchnorm-lr",
        "BatchNorm allows higher learning rates",
        "With BatchNorm a network trains well at learning rates about 10x higher than without it.",
        ("setting", "batchnorm", "lr"),
        tuple(
            v
            for base in (rings_lr, digits_lr)
            for v in _grid(base, batchnorm=[False, True], lr=lrs)
        ),
    )

    # 5. A wide MLP on 300 digits images overfits: the train/val gap is there to close.
    wide = {**deep, "data": "digits", "max_train": 100 if quick else 300, "depth": 2}
    wide |= {"width": 256, "init": "default", "batch_size": 32, "epochs": epochs(60)}
    dropout = Claim(
        "dropout",
        "Dropout as regularisation",
        "Dropout regularises: the higher the dropout rate, the smaller the gap between "
        "training and validation performance, and validation accuracy improves.",
        ("dropout",),
        tuple(_grid(wide, dropout=[0.0, 0.5] if quick else [0.0, 0.2, 0.4, 0.6, 0.8])),
    )
    return [rings_bn, vanishing, initialisation, bn_lr, dropout]


def claim_names() -> list[str]:
    return [c.name for c in claims()]
