"""The baseline: the plain Optuna + PyTorch script a competent user writes by hand.

optuna.create_study on a SQLite file + study.optimize; sklearn digits as tensors with
their own stratified 60/20/20 split; models.create_model and the study file's search space
(read with hpo.config.spec.load_spec, so both sides search exactly the same space), the study
file's sampler and pruner settings; a plain PyTorch loop. Nothing of hpo's worker,
objective or training loop is used. Writes {trial number: training seconds} as JSON.

    python3 benchmarks/plain_optuna.py --study-file studies/digits-cnn.toml \
        --storage sqlite:///plain.db --trials 10 --out plain.json
"""

from __future__ import annotations

import argparse
import json
import time

import _machine  # noqa: F401  (sys.path for `hpo` when run from a checkout)
import numpy as np
import optuna
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from hpo.config.space import CategoricalParam, FixedParam, FloatParam, IntParam
from hpo.config.spec import load_spec
from models import create_model
from models.vocabulary import MODEL_KEYS


def digits(seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    bunch = load_digits()
    x = bunch.images[:, None].astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    held = round(0.2 * len(y))
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=held, stratify=y, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=held, stratify=y_rest, random_state=seed
    )
    mean, std = x_train.mean(), x_train.std()
    return {
        name: (torch.from_numpy((a - mean) / std), torch.from_numpy(b))
        for name, a, b in (
            ("train", x_train, y_train),
            ("val", x_val, y_val),
            ("test", x_test, y_test),
        )
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study-file", default="studies/digits-cnn.toml")
    parser.add_argument("--storage", default="sqlite:///plain.db")
    parser.add_argument("--trials", type=int, default=None, help="default: the study file's")
    parser.add_argument("--out", default=None, help="JSON file for per-trial train seconds")
    args = parser.parse_args()

    spec = load_spec(args.study_file)
    data = digits(spec.data.seed)
    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    train_seconds: dict[int, float] = {}

    def objective(trial: optuna.Trial) -> float:
        params = {}
        for name, p in spec.space.items():
            if isinstance(p, FixedParam):
                params[name] = p.value
            elif isinstance(p, IntParam):
                params[name] = trial.suggest_int(name, p.low, p.high, step=p.step, log=p.log)
            elif isinstance(p, FloatParam):
                params[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
            elif isinstance(p, CategoricalParam):
                params[name] = trial.suggest_categorical(name, list(p.choices))
        torch.manual_seed(trial.number)
        model = create_model(
            "cnn",
            in_shape=(1, 8, 8),
            num_outputs=10,
            **{k: v for k, v in params.items() if k in MODEL_KEYS},
        )
        lr, wd = params["lr"], params["weight_decay"]
        if params["optimizer"] == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                model.parameters(), lr=lr, momentum=0.9, weight_decay=wd
            )
        elif params["optimizer"] == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
        batch = params["batch_size"]
        n = len(y_train)
        started = time.perf_counter()
        accuracy = 0.0
        try:
            for epoch in range(1, spec.train.epochs + 1):
                model.train()
                for index in torch.randperm(n).split(batch):
                    loss = F.cross_entropy(model(x_train[index]), y_train[index])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                if not torch.isfinite(loss):
                    return float("nan")  # Optuna records the trial as failed
                model.eval()
                with torch.no_grad():
                    accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
                trial.report(accuracy, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        finally:
            train_seconds[trial.number] = time.perf_counter() - started
        return accuracy

    sampler_options = dict(spec.sampler.options)
    if spec.sampler.name == "tpe":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
            seed=spec.sampler.seed,
            multivariate=True,
            constant_liar=True,
            **sampler_options,
        )
    else:
        sampler = optuna.samplers.RandomSampler(seed=spec.sampler.seed)
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.NopPruner()
        if spec.pruner.name == "none"
        else optuna.pruners.MedianPruner(**{"n_warmup_steps": 1, **spec.pruner.options})
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=spec.name,
        storage=args.storage,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    study.optimize(objective, n_trials=args.trials or spec.trials)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(train_seconds, handle)


if __name__ == "__main__":
    main()
