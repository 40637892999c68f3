"""Running the claims: every run trained here, in this process, and stored as one trial.

One study per claim (`claims-NAME`). A run's whole record (params, per-epoch curves as
intermediate values and attrs, layer diagnostics, the decision-boundary grid) is written
in one `add_trial` once it has trained, so a killed run leaves nothing half-written and
resuming is a matter of skipping the keys already stored. The runs are fixed, not sampled:
nothing here needs a sampler, a queue or a worker process.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from hpo.claims.experiments import MAX_SEEDS, Claim, Run, study_name
from hpo.claims.load import (
    CLAIM_ATTR,
    CONFIG_ATTR,
    GRID_ATTR,
    POINTS_ATTR,
    RUN_ATTR,
    SIZE_ATTR,
    done_keys,
)
from hpo.training.data import Dataset, load_dataset
from hpo.training.diagnostics import record_layer_stats
from hpo.training.loop import DivergedError, EpochResult, TrainConfig, evaluate, num_outputs, train
from models import create_model
from models.layered import layered_mlp
from models.probes import decision_grid
from models.textbook import TEXTBOOK_INITS, textbook_init

BOUNDARY_EXTENT = 2.6  # standardized units: the outer ring (radius 2 + noise) stays inside
BOUNDARY_SIZE = 41  # grid points per side; 41 x 41 percentages is ~5 kB of JSON per run
POINTS_SHOWN = 300  # validation points stored with the rings study, drawn over the boundary
DIGITS = 4  # significant digits kept of the curves
# Samples of the fixed batch the layer statistics are measured on: the claims are about
# these numbers, so they get their own, larger batch than a trial's cheap diagnostics.
DIAG_BATCH = 256


@dataclass(frozen=True)
class RunDone:
    """What the progress line shows of a finished run."""

    claim: str
    key: str
    number: int  # runs finished in this claim so far, this one included
    total: int
    value: float | None  # final validation accuracy; None: diverged
    seconds: float


def run_claims(
    storage: optuna.storages.BaseStorage,
    claims: list[Claim],
    *,
    size: str,
    seeds: int,
    on_run: Callable[[RunDone], None] | None = None,
) -> int:
    """Create (or resume) each claim's study and train the runs it does not hold yet.

    Returns how many runs trained now. Each data set is loaded once.
    """
    data: dict[tuple[str, int | None], Dataset] = {}
    trained = 0
    with _one_thread():
        for claim in claims:
            study = optuna.create_study(
                study_name=study_name(claim.name, size),
                storage=storage,
                direction="maximize",
                load_if_exists=True,
            )
            for key, value in ((CLAIM_ATTR, claim.name), (SIZE_ATTR, size)):
                if study.user_attrs.get(key) != value:
                    study.set_user_attr(key, value)
            runs = claim.runs(seeds)
            done = done_keys(study)
            finished = sum(r.key in done for r in runs)
            for run in runs:
                if run.key in done:
                    continue
                source = (run.config["data"], run.config["max_train"])
                if source not in data:
                    data[source] = load_dataset(source[0], seed=0, max_train=source[1])
                if run.config["boundary"] and POINTS_ATTR not in study.user_attrs:
                    study.set_user_attr(POINTS_ATTR, val_points(data[source]))
                started = time.perf_counter()
                trial = train_run(run, data[source], distributions(claim))
                study.add_trial(trial)
                trained += 1
                finished += 1
                if on_run is not None:
                    seconds = time.perf_counter() - started
                    on_run(RunDone(claim.name, run.key, finished, len(runs), trial.value, seconds))
    return trained


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Networks this small train fastest on one thread (no fork/join per tiny matmul)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def distributions(claim: Claim) -> dict[str, BaseDistribution]:
    """The trial params' distributions: each axis over the values the claim gives it, so
    the dashboard's plots span the grid (lr on a log axis); the seed over a fixed range."""
    out: dict[str, BaseDistribution] = {"seed": IntDistribution(0, MAX_SEEDS - 1)}
    for axis in claim.axes:
        values = claim.values(axis)
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric and len(values) > 1 and all(isinstance(v, int) for v in values):
            out[axis] = IntDistribution(min(values), max(values))
        elif numeric and len(values) > 1:
            low, high = float(min(values)), float(max(values))
            out[axis] = FloatDistribution(low, high, log=axis == "lr" and low > 0)
        else:
            out[axis] = CategoricalDistribution(values)
    return out


def build_model(config: dict[str, Any], data: Dataset) -> nn.Module:
    """The run's network, freshly initialised (call torch.manual_seed first)."""
    textbook = config["init"] in TEXTBOOK_INITS
    common = {
        "activation": config["activation"],
        "init": "default" if textbook else config["init"],
        "dropout": config["dropout"],
        "batchnorm": config["batchnorm"],
    }
    outputs = num_outputs(data.num_classes)
    if config["model"] == "layered":
        in_features = math.prod(data.in_shape)
        model: nn.Module = layered_mlp(in_features, config["widths"], outputs, **common)
    else:
        model = create_model(
            config["model"],
            in_shape=data.in_shape,
            num_outputs=outputs,
            depth=config["depth"],
            width=config["width"],
            **common,
        )
    return textbook_init(model, config["init"]) if textbook else model


def train_run(run: Run, data: Dataset, dists: dict[str, BaseDistribution]) -> FrozenTrial:
    """Train one run and return its trial, ready for `study.add_trial`: COMPLETE with the
    final validation accuracy, or FAIL when the loss diverged (curves up to there kept)."""
    config = run.config
    torch.manual_seed(config["seed"])  # weights and dropout masks; the shuffles: TrainConfig
    model = build_model(config, data)
    batch = data.train.batch(slice(0, DIAG_BATCH))  # the same samples for every run
    attrs: dict[str, Any] = {RUN_ATTR: run.key, CONFIG_ATTR: config}
    record_layer_stats(attrs, "init", model, batch)
    train_config = TrainConfig(
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        optimizer=config["optimizer"],
        lr=config["lr"],
        momentum=config["momentum"],
        seed=config["seed"],
    )
    history: list[EpochResult] = []
    started = time.perf_counter()
    diverged = False
    try:
        train(model, data, train_config, on_epoch=history.append)
    except DivergedError:
        diverged = True
        attrs["diverged_in_epoch"] = len(history) + 1
    attrs["train_seconds"] = round(time.perf_counter() - started, 3)
    attrs["train_loss"] = [compact(h.train_loss) for h in history]
    attrs["val_loss"] = [compact(h.val_loss) for h in history]
    attrs["val_accuracy"] = [compact(h.val_accuracy) for h in history]
    if not diverged:
        record_layer_stats(attrs, "final", model, batch)
        # In eval mode on the whole training split: the fit dropout leaves, not its noise.
        loss, accuracy = evaluate(model, data.train)
        attrs["final_train_loss"], attrs["final_train_accuracy"] = compact(loss), accuracy
        if config["boundary"]:
            grid = decision_grid(model, extent=BOUNDARY_EXTENT, size=BOUNDARY_SIZE)
            attrs[GRID_ATTR] = (grid * 100).round().int().tolist()  # percent, row = y
    intermediate = {h.epoch: h.val_accuracy for h in history if math.isfinite(h.val_accuracy)}
    return optuna.trial.create_trial(
        state=TrialState.FAIL if diverged or not history else TrialState.COMPLETE,
        value=None if diverged or not history else history[-1].val_accuracy,
        params=run.params,
        distributions=dists,
        user_attrs=attrs,
        intermediate_values=intermediate,
    )


def val_points(data: Dataset, n: int = POINTS_SHOWN) -> list[list[float]]:
    """The first `n` validation points as [x, y, label] (standardized inputs, as the grid)."""
    x, y = data.val.batch(slice(0, n))
    return [
        [round(float(a), 3), round(float(b), 3), int(c)] for (a, b), c in zip(x, y, strict=True)
    ]


def compact(value: float) -> float | None:
    """`DIGITS` significant digits; None for NaN / inf, which JSON cannot hold."""
    return float(f"{value:.{DIGITS}g}") if math.isfinite(value) else None
