"""`hpo record FILE --configs N --repeats R --out TABLE.db`: learning curves, recorded once.

The configurations (`pick_configs`): the full grid when every searched key is a `choices`
list and N covers it, otherwise N points of a scrambled Sobol sample (seeded with the
study's sampler seed) mapped into the space, so the table covers it evenly.

Underneath it is R ordinary hpo studies, `NAME-record-rR`, one per repeat, each with the
configurations as its known trials ([[enqueue]]), the full epochs and no pruner: resumable
(run it again and only what is missing trains), spread over `--workers` and `--gpus`, and a
killed run loses nothing. A trial's training seed comes from its trial number, so repeat r
queues the configurations rotated by r: every repeat of a configuration trains under a
different seed (hence R <= N). Once every study has its budget, the table is written from
the stored trials: each epoch's reported value and seconds (`epoch_seconds`) and the final
`test_accuracy` (hpo.compare.table has the format).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import platform
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.compare.table import GRID_META, Run, canonical, write_table
from hpo.config.rules import MAX_ENQUEUE
from hpo.config.space import CategoricalParam, FixedParam, FloatParam, IntParam, Param
from hpo.config.spec import PrunerSpec, StudySpec, spec_from_dict
from hpo.errors import HpoError

if TYPE_CHECKING:
    from hpo.config.settings import Settings

EPOCH_SECONDS_ATTR = "epoch_seconds"  # trial user attr (hpo.training.objective)


def pick_configs(space: Mapping[str, Param], n: int, seed: int) -> tuple[list[dict], bool]:
    """N configurations of the searched keys, and whether they are the whole grid."""
    searched = {k: p for k, p in space.items() if not isinstance(p, FixedParam)}
    if not searched:
        raise HpoError("the study file searches nothing: there is nothing to record")
    if all(isinstance(p, CategoricalParam) for p in searched.values()):
        size = math.prod(len(p.choices) for p in searched.values())  # type: ignore[union-attr]
        if size <= n:
            grid = itertools.product(*(p.choices for p in searched.values()))  # type: ignore[union-attr]
            return [dict(zip(searched, values, strict=True)) for values in grid], True
    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "balance properties": N need not be a power of 2
        points = qmc.Sobol(d=len(searched), scramble=True, seed=seed).random(n)
    configs: dict[str, dict[str, Any]] = {}
    for point in points:
        params = {k: _at(p, float(u)) for (k, p), u in zip(searched.items(), point, strict=True)}
        configs.setdefault(canonical(params), params)  # int keys can repeat a point
    return list(configs.values()), False


def _at(param: Param, u: float) -> Any:
    """The value at u in [0, 1) of one searched key (the inverse of the unit-cube map)."""
    if isinstance(param, CategoricalParam):
        return param.choices[min(int(u * len(param.choices)), len(param.choices) - 1)]
    assert isinstance(param, IntParam | FloatParam)
    low, high = float(param.low), float(param.high)
    x = (
        math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        if param.log
        else (low + u * (high - low))
    )
    if isinstance(param, IntParam):
        steps = round((x - param.low) / param.step)
        return min(param.low + steps * param.step, param.high)
    if param.step is not None:
        return min(low + round((x - low) / param.step) * param.step, high)
    return min(x, high)


def repeat_specs(spec: StudySpec, configs: list[dict], repeats: int) -> list[StudySpec]:
    """One derived spec per repeat: its configurations rotated, full epochs, no pruner."""
    if not 1 <= len(configs) <= MAX_ENQUEUE:
        raise HpoError(f"--configs must be in [1, {MAX_ENQUEUE}], got {len(configs)}")
    if not 1 <= repeats <= len(configs):
        raise HpoError(
            f"--repeats must be in [1, {len(configs)}] (at most the number of "
            f"configurations, each repeat trains under other seeds), got {repeats}"
        )
    out = []
    for r in range(repeats):
        rotated = configs[r:] + configs[:r]
        derived = dataclasses.replace(
            spec,
            name=f"{spec.name}-record-r{r}",
            trials=len(configs),
            pruner=PrunerSpec("none", {}),
            stop_after=None,
            timeout=None,
            keep=0,
            enqueue=tuple(rotated),
        )
        source = f"derived spec {derived.name}"
        out.append(spec_from_dict(derived.to_dict(), source=source))
    return out


def table_runs(
    trials_by_repeat: list[list[FrozenTrial]], configs: list[dict]
) -> dict[tuple[int, int], Run]:
    """(config_id, repeat) -> its recorded run, from each repeat study's finished trials.

    A trial that failed records nothing (one ended by early stopping records the epochs it
    ran, as it would end in a live study): replay draws among the repeats a configuration
    has.
    """
    ids = {canonical(c): i for i, c in enumerate(configs)}
    runs: dict[tuple[int, int], Run] = {}
    for repeat, trials in enumerate(trials_by_repeat):
        for t in trials:
            if t.state != TrialState.COMPLETE or not t.intermediate_values:
                continue
            config_id = ids.get(canonical({k: t.params.get(k) for k in configs[0]}))
            if config_id is None:
                continue
            steps = sorted(t.intermediate_values)
            values = tuple(float(t.intermediate_values[s]) for s in steps)
            seconds = t.user_attrs.get(EPOCH_SECONDS_ATTR)
            if not isinstance(seconds, list) or len(seconds) != len(values):
                # Resumed from a checkpoint: the earlier epochs' seconds were not measured
                # by this attempt; spread the training seconds evenly.
                total = float(t.user_attrs.get("train_seconds", 0.0))
                seconds = [total / len(values)] * len(values)
            accuracy = t.user_attrs.get("test_accuracy")
            runs[(config_id, repeat)] = Run(
                values,
                tuple(float(s) for s in seconds),
                float(accuracy) if isinstance(accuracy, int | float) else None,
            )
    return runs


def table_meta(
    file: str, spec: StudySpec, grid: bool, repeats: int, trials: list[FrozenTrial]
) -> dict[str, Any]:
    import torch

    devices = sorted({str(t.user_attrs.get("device")) for t in trials if "device" in t.user_attrs})
    d = spec.data
    return {
        "study_file": str(Path(file).resolve()),
        "study": spec.name,
        "dataset": d.name,
        "split": f"seed={d.seed} val_fraction={d.val_fraction} max_train={d.max_train} "
        f"max_val={d.max_val}",
        "metric": spec.metric,
        "direction": spec.direction,
        "epochs": spec.train.epochs,
        "repeats": repeats,
        GRID_META: "1" if grid else "0",
        "machine": _machine(),
        "device": ", ".join(devices),
        "hpo_version": _hpo_version(),
        "torch_version": torch.__version__,
        "optuna_version": optuna.__version__,
    }


def _machine() -> str:
    """Cores, CPU model and OS of the machine that recorded (its GPUs are in `device`)."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, {platform.platform()}"


def _hpo_version() -> str:
    try:
        return metadata.version("hpo")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def record_file(
    settings: Settings,
    file: str,
    *,
    configs: int,
    repeats: int = 2,
    workers: int = 1,
    gpus: str = "none",
    data_dir: str | None = None,
    out: str | Path,
) -> Path:
    """Train (or resume) the repeat studies of `file`, then write the table to `out`."""
    from hpo.config.spec import load_spec
    from hpo.runtime.devices import parse_gpus, visible_gpus
    from hpo.runtime.launch import check_exit_codes, plan_workers, run_local_workers
    from hpo.runtime.worker import load_study_data
    from hpo.storage.open import connect
    from hpo.study.create import open_study
    from hpo.study.records import budget_of, counted_trials
    from hpo.study.samplers import check_options

    spec = check_options(load_spec(file), source=file)
    if configs < 1:
        raise HpoError(f"--configs must be >= 1, got {configs}")
    if workers < 1:
        raise HpoError(f"--workers must be >= 1, got {workers}")
    chosen, grid = pick_configs(spec.space, configs, spec.sampler.seed)
    specs = repeat_specs(spec, chosen, repeats)
    plans = plan_workers(workers, parse_gpus(gpus, visible_gpus()))
    load_study_data(spec, data_dir)  # fails before the storage is touched
    storage = connect(settings)
    print(
        f"recording {len(chosen)} configuration(s)"
        f"{' (the full grid)' if grid else ' (scrambled Sobol sample)'} x {repeats} repeat(s) "
        f"of {spec.name}, {spec.train.epochs} epochs each: studies {specs[0].name} .."
    )
    studies = [open_study(storage, s, trials=len(chosen)) for s in specs]
    for study in studies:
        if not budget_of(study).done:
            check_exit_codes(
                run_local_workers(
                    study,
                    settings.storage_url,
                    plans,
                    data_dir=data_dir,
                    extra_env=settings.worker_env(),
                )
            )
    trials = [[t for t in counted_trials(s.get_trials()) if t.state.is_finished()] for s in studies]
    unfinished = [s.study_name for s in studies if not budget_of(s).done]
    if unfinished:
        raise HpoError(
            f"{', '.join(unfinished)} did not finish its budget; run `hpo record` again to "
            "resume it before the table is written"
        )
    runs = table_runs(trials, chosen)
    meta = table_meta(file, spec, grid, repeats, [t for ts in trials for t in ts])
    write_table(out, dict(enumerate(chosen)), runs, meta)
    print(f"wrote {out}: {len(chosen)} configurations, {len(runs)} recorded runs")
    return Path(out)
