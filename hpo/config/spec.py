"""Study files (TOML) -> frozen, validated dataclasses.

Every error names the file, the key and what is allowed, so the CLI can print it as one
line. The same parser validates the snapshot stored with a study, so a worker on another
machine rebuilds exactly what the launcher validated. Pure: no torch, no Optuna (the
sampler's and pruner's options are checked against the installed Optuna by
hpo.study.samplers.check_options, which every command runs after this).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hpo.config.data import KIND_OF, USER_KEYS, check_user_data, pairing_problem, resolve_data_path
from hpo.config.objectives import (
    METRIC_DIRECTIONS,
    ConstraintSpec,
    check_beside_metrics,
    directions_of,
    parse_objectives,
)
from hpo.config.rules import (
    MAX_ENQUEUE,
    MAX_EPOCHS,
    MAX_KEEP,
    MAX_NAME_LENGTH,
    MAX_SEED,
    MAX_TRIALS,
    Reporter,
    is_int,
    is_named,
    is_number,
    is_seed,
    listed,
    unknown_text,
)
from hpo.config.space import (
    IDENTIFIER,
    Param,
    known_params,
    param_to_dict,
    parse_space,
    searched_values,
)
from hpo.config.vocabulary import (
    DATASETS,
    PRUNERS,
    SAMPLERS,
    USER_DATASETS,
)
from hpo.errors import SpecError
from models.vocabulary import (
    MODEL_NAMES,
)

METRICS: dict[str, str] = {"val_accuracy": "maximize", "val_loss": "minimize"}
NAME_ALLOWED = (
    "a study name takes printable characters only (letters, digits, spaces, punctuation); "
    "no newline, tab or other control character"
)


# ---------------------------------------------------------------- study file sections


@dataclass(frozen=True)
class DataSpec:
    name: str = "digits"  # one of hpo.training.data.DATASETS
    dir: str | None = None  # folder of mnist / fashion-mnist / cifar10; None: HPO_DATA, system
    seed: int = 0  # fixes the train / validation / test split
    val_fraction: float = 0.2  # share of the training data held out for validation
    max_train: int | None = None  # cap on training samples, for quick runs
    max_val: int | None = None  # cap on validation samples: evaluated every epoch of a trial
    # A user's own data (name = folder | npz | csv; hpo.config.data): absolute once loaded.
    path: str | None = None  # the folder or file, relative to the study file
    label: str | None = None  # csv: the label column
    image_size: tuple[int, int] | None = None  # folder: [height, width] to resize to
    channels: int | None = None  # folder: 1 (grayscale) or 3 (RGB); None: as the images are


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = 10  # epochs per trial; also the pruner's step budget
    max_memory_mb: float | None = None  # a trial estimated above fails; None: device share
    force_augment: bool = False  # allow space.augment = crop_flip on digits / mnist anyway
    diagnostics: bool = True  # layer stats on one small batch before and after; off: leanest


@dataclass(frozen=True)
class SamplerSpec:
    name: str = "tpe"  # random | tpe | qmc | gp
    seed: int = 0  # base seed; each worker adds its own offset
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword args of the sampler


@dataclass(frozen=True)
class PrunerSpec:
    name: str = "median"  # none | median | hyperband
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword args of the pruner


@dataclass(frozen=True)
class StudySpec:
    name: str  # study name in the storage
    model: str  # one of models.vocabulary.MODEL_NAMES
    trials: int = 30  # study-wide budget of finished trials
    metric: str = "val_accuracy"  # what the sampler optimizes, measured on validation data
    direction: str = "maximize"  # follows the metric unless given
    timeout: float | None = None  # seconds from study creation to its shared trial deadline
    keep: int = 3  # the best completed trials whose weights stay in the artifact store; 0: none
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    space: Mapping[str, Param] = field(default_factory=dict)
    # The study stops once this many finished trials in a row have not improved on the best
    # value by more than min_delta; None: it runs its whole budget.
    stop_after: int | None = None
    min_delta: float = 0.0  # the smallest change of the best value that counts as improving
    enqueue: tuple[Mapping[str, Any], ...] = ()  # [[enqueue]]: known params, run first
    # [model] entry "module:function": the user's own network (model is then OWN_MODEL)
    entry: str | None = None
    entry_dir: str | None = None  # the study file's folder: entry's module is looked up there first
    entry_sha256: str | None = None  # its module's source, hashed at launch: workers compare
    # [study] metrics: 2 or 3 objectives (hpo.config.objectives); (): the one `metric`
    metrics: tuple[str, ...] = ()
    constraints: ConstraintSpec = field(default_factory=ConstraintSpec)
    latency_batch: int = 1  # samples per timed forward pass of latency_ms

    @property
    def objectives(self) -> tuple[str, ...]:
        """The metrics the study optimizes, in the order of a trial's values."""
        return self.metrics or (self.metric,)

    @property
    def directions(self) -> tuple[str, ...]:
        return directions_of(self.metrics) if self.metrics else (self.direction,)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot that `spec_from_dict` turns back into this spec."""
        snapshot = asdict(self)
        _drop_objective_defaults(snapshot)
        snapshot["space"] = {key: param_to_dict(p) for key, p in self.space.items()}
        snapshot["enqueue"] = [dict(params) for params in self.enqueue]
        return snapshot

    def identity(self) -> dict[str, Any]:
        """What makes two specs the same experiment: all but name, budget, deadline, how many
        models are kept, and local paths."""
        snapshot = self.to_dict()
        for key in ("name", "trials", "timeout", "keep", "stop_after", "min_delta", "enqueue"):
            snapshot.pop(key)
        snapshot["data"].pop("dir")
        snapshot.pop("entry_dir")
        return snapshot


# Keys that shape only some models: elsewhere they would be searched without effect.
MODEL_ONLY_KEYS: dict[str, tuple[str, ...]] = {"pool": ("cnn",), "kernel": ("cnn", "resnet")}
# Data sets crop_flip suits: a mirrored digit is another symbol or none (digits, mnist), and
# rings are points, not images; shirts and cars stay what they are.
FLIP_SAFE_DATA = ("fashion-mnist", "cifar10")
IMAGE_DATA = ("digits", "mnist", "fashion-mnist", "cifar10")
IMAGE_MODELS = ("cnn", "resnet")  # convolutions: they need images, not rings' points

# ---------------------------------------------------------------- own networks ([model] entry)

OWN_MODEL = "own"  # StudySpec.model of a network built by the user's [model] entry
ENTRY_PATTERN = re.compile(rf"{IDENTIFIER}(\.{IDENTIFIER})*:{IDENTIFIER}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


def _parse_model(table: Mapping[str, Any], err: Reporter) -> tuple[str, str | None]:
    """[model]: (model name, None) for a built-in network, (OWN_MODEL, entry) for one's own."""
    _check_keys(table, "model", err)  # `[model] depth = 3` belongs in [space]
    if "entry" not in table:
        model = table.get("name")
        if not is_named(model, MODEL_NAMES):
            raise err(
                "model.name", f"unknown model {model!r}; choose one of: {listed(MODEL_NAMES)}"
            )
        return model, None
    entry = table["entry"]
    if "name" in table:
        raise err("model", "give name (a built-in network) or entry (your own), not both")
    if not (isinstance(entry, str) and ENTRY_PATTERN.fullmatch(entry)):
        raise err(
            "model.entry",
            f"{entry!r} must be 'module:function', e.g. 'mynets:build' (a module beside the "
            "study file or on PYTHONPATH)",
        )
    return OWN_MODEL, entry


def _with_entry_source(spec: StudySpec, entry_dir: Any, sha256: Any, err: Reporter) -> StudySpec:
    """A stored spec's own-network source: where its module was found, its hash."""
    if spec.entry is None:
        for key, value in (("entry_dir", entry_dir), ("entry_sha256", sha256)):
            if value is not None:
                raise err(key, f"{value!r}: an own network's source without [model] entry")
        return spec
    if entry_dir is not None and not (isinstance(entry_dir, str) and entry_dir.isprintable()):
        raise err("entry_dir", f"{entry_dir!r} must be a folder path")
    if sha256 is not None and not (isinstance(sha256, str) and SHA256_PATTERN.fullmatch(sha256)):
        raise err("entry_sha256", f"{sha256!r} must be 64 lowercase hex digits")
    return dataclasses.replace(spec, entry_dir=entry_dir, entry_sha256=sha256)


_SECTIONS: dict[str, frozenset[str]] = {
    "": frozenset(
        {"study", "model", "data", "train", "sampler", "pruner", "space", "enqueue", "constraints"}
    ),
    "study": frozenset(
        {
            "name",
            "metric",
            "direction",
            "trials",
            "timeout",
            "keep",
            "stop_after",
            "min_delta",
            "metrics",
            "latency_batch",
        }
    ),
    "model": frozenset({"name", "entry"}),
    "data": frozenset({"name", "dir", "seed", "val_fraction", "max_train", "max_val"}) | USER_KEYS,
    "train": frozenset({"epochs", "max_memory_mb", "force_augment", "diagnostics"}),
    "sampler": frozenset({"name", "seed", "options"}),
    "pruner": frozenset({"name", "options"}),
}


# ---------------------------------------------------------------- parsing


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such study file (ready-made ones are in studies/)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file (expected UTF-8 TOML)") from None
    spec = parse_spec(resolve_data_path(raw, path.parent), source=str(path))
    if spec.entry is None:
        return spec
    return dataclasses.replace(spec, entry_dir=str(path.resolve().parent))


def spec_from_dict(snapshot: Mapping[str, Any], *, source: str = "stored spec") -> StudySpec:
    """Rebuild a spec from `StudySpec.to_dict()` output (the snapshot stored with a study)."""
    raw = dict(snapshot)
    study = {k: raw.pop(k) for k in list(raw) if k in _SECTIONS["study"]}
    own = {k: raw.pop(k, None) for k in ("entry", "entry_dir", "entry_sha256")}
    model = {"name": raw.pop("model")} if own["entry"] is None else {"entry": own["entry"]}
    if own["entry"] is not None:
        raw.pop("model", None)
    spec = parse_spec({"study": study, "model": model, **raw}, source=source)
    return _with_entry_source(spec, own["entry_dir"], own["entry_sha256"], Reporter(source))


def renamed(spec: StudySpec, name: str) -> StudySpec:
    """The spec under another name (`--name`), checked like a name in a study file."""
    return spec_from_dict({**spec.to_dict(), "name": name}, source="--name")


def parse_spec(raw: Mapping[str, Any], *, source: str) -> StudySpec:
    """Validate a study file's parsed TOML; raises SpecError naming source and key."""
    err = Reporter(source)
    _check_keys(raw, "", err)
    for section in _SECTIONS:
        if section and section in raw and not isinstance(raw[section], Mapping):
            raise err(section, "must be a table, e.g. [" + section + "]")

    study = raw.get("study", {})
    _check_keys(study, "study", err)
    name = study.get("name")
    if not isinstance(name, str) or not name.strip():
        raise err("study.name", "is required: a non-empty string naming the study")
    if len(name.strip()) > MAX_NAME_LENGTH:  # names become paths, locks and table cells
        raise err("study.name", f"is {len(name.strip())} characters; at most {MAX_NAME_LENGTH}")
    if not name.strip().isprintable():  # a newline or escape would reach every terminal
        raise err("study.name", f"{name!r}: {NAME_ALLOWED}")
    objectives = parse_objectives(study, raw.get("constraints"), err)
    if objectives.metrics:  # the first metric stands for the study where one is needed
        check_beside_metrics(study, raw.get("pruner", {}), err)
        study = {**study, "metric": objectives.metrics[0]}
        study["direction"] = METRIC_DIRECTIONS[study["metric"]]
    metric = study.get("metric", "val_accuracy")
    if not is_named(metric, METRIC_DIRECTIONS if objectives.metrics else METRICS):
        raise err("study.metric", f"unknown metric {metric!r}; choose one of: {listed(METRICS)}")
    direction = study.get("direction", METRICS[metric])
    if direction not in ("maximize", "minimize"):
        raise err("study.direction", f"{direction!r} must be 'maximize' or 'minimize'")
    trials = study.get("trials", 30)
    if not is_int(trials) or not 1 <= trials <= MAX_TRIALS:
        raise err("study.trials", f"{trials!r} must be an integer in [1, {MAX_TRIALS}]")
    timeout = study.get("timeout")
    if timeout is not None and not (is_number(timeout) and timeout > 0):
        raise err("study.timeout", f"{timeout!r} must be a number of seconds > 0")
    keep = study.get("keep", 0 if objectives.metrics else 3)
    if not is_int(keep) or not 0 <= keep <= MAX_KEEP:
        raise err("study.keep", f"{keep!r} must be an integer in [0, {MAX_KEEP}] (0 keeps none)")
    stop_after, min_delta = _parse_stop(study, err)

    model, entry = _parse_model(raw.get("model", {}), err)

    data = _parse_data(raw.get("data", {}), err)
    train = _parse_train(raw.get("train", {}), err)
    sampler = _parse_sampler(raw.get("sampler", {}), err)
    pruner_table = raw.get("pruner", {})
    if objectives.metrics:  # no pruner beside metrics (check_beside_metrics)
        pruner_table = {"name": "none", **pruner_table}
    pruner = _parse_pruner(pruner_table, err)
    space = parse_space(raw.get("space", {}), err, own=entry is not None)
    _check_space_fits(space, model, data.name, train.force_augment, err)
    enqueue = _parse_enqueue(raw.get("enqueue", []), space, err)
    return StudySpec(
        name=name.strip(),
        model=model,
        trials=trials,
        metric=metric,
        direction=direction,
        timeout=float(timeout) if timeout is not None else None,
        keep=keep,
        data=data,
        train=train,
        sampler=sampler,
        pruner=pruner,
        space=space,
        stop_after=stop_after,
        min_delta=min_delta,
        enqueue=enqueue,
        entry=entry,
        metrics=objectives.metrics,
        constraints=objectives.constraints,
        latency_batch=objectives.latency_batch,
    )


def _check_keys(table: Mapping[str, Any], section: str, err: Reporter) -> None:
    allowed = _SECTIONS[section]
    for key in table:
        if key not in allowed:
            where = f"{section}.{key}" if section else key
            raise err(where, unknown_text(key, allowed, "key"))


def _parse_data(table: Mapping[str, Any], err: Reporter) -> DataSpec:
    _check_keys(table, "data", err)
    spec = DataSpec(**table)
    if not is_named(spec.name, (*DATASETS, *USER_DATASETS)):
        names = listed((*DATASETS, *USER_DATASETS))
        raise err("data.name", f"unknown dataset {spec.name!r}; choose one of: {names}")
    user = {key: getattr(spec, key) for key in sorted(USER_KEYS)}
    size, channels = check_user_data(spec.name, user, spec.dir, err)
    spec = replace(spec, image_size=size, channels=channels)
    if spec.dir is not None and not isinstance(spec.dir, str):
        raise err("data.dir", "must be a path string")
    if not is_seed(spec.seed):
        raise err("data.seed", f"{spec.seed!r} must be an integer in [0, {MAX_SEED}]")
    if not (is_number(spec.val_fraction) and 0 < spec.val_fraction < 0.5):
        raise err("data.val_fraction", f"{spec.val_fraction!r} must be in (0, 0.5)")
    for key in ("max_train", "max_val"):
        cap = getattr(spec, key)
        if cap is not None and not (is_int(cap) and cap >= 10):
            raise err(f"data.{key}", f"{cap!r} must be an integer >= 10")
    return spec


def _parse_train(table: Mapping[str, Any], err: Reporter) -> TrainSpec:
    _check_keys(table, "train", err)
    spec = TrainSpec(**table)
    if not is_int(spec.epochs) or not 1 <= spec.epochs <= MAX_EPOCHS:
        raise err("train.epochs", f"{spec.epochs!r} must be an integer in [1, {MAX_EPOCHS}]")
    limit = spec.max_memory_mb
    if limit is not None and not (is_number(limit) and limit > 0):
        raise err("train.max_memory_mb", f"{limit!r} must be a number of megabytes > 0")
    for key in ("force_augment", "diagnostics"):
        if not isinstance(getattr(spec, key), bool):
            raise err(f"train.{key}", f"{getattr(spec, key)!r} must be true or false")
    return spec


def _parse_stop(study: Mapping[str, Any], err: Reporter) -> tuple[int | None, float]:
    """[study] stop_after and min_delta: the early stop of the whole study."""
    stop_after = study.get("stop_after")
    if stop_after is not None and not (is_int(stop_after) and 1 <= stop_after <= MAX_TRIALS):
        raise err(
            "study.stop_after",
            f"{stop_after!r} must be an integer in [1, {MAX_TRIALS}] (finished trials without "
            "improvement; leave it out to run the whole budget)",
        )
    min_delta = study.get("min_delta", 0.0)
    if not (is_number(min_delta) and min_delta >= 0):
        raise err("study.min_delta", f"{min_delta!r} must be a number >= 0")
    if min_delta and stop_after is None:  # a stored spec says min_delta = 0.0 either way
        raise err("study.min_delta", f"{min_delta!r} applies only with stop_after = N")
    return stop_after, float(min_delta)


def _parse_enqueue(
    tables: Any, space: Mapping[str, Param], err: Reporter
) -> tuple[dict[str, Any], ...]:
    """[[enqueue]]: known configurations, each checked against the space; none twice."""
    if not isinstance(tables, list):
        raise err("enqueue", "must be an array of tables: [[enqueue]] followed by key = value")
    if len(tables) > MAX_ENQUEUE:
        raise err("enqueue", f"{len(tables)} tables; at most {MAX_ENQUEUE}")
    known: list[dict[str, Any]] = []
    for number, params in enumerate(tables, start=1):
        checked = known_params(params, space, err, where=f"enqueue #{number}")
        if checked in known:
            first = known.index(checked) + 1
            raise err(f"enqueue #{number}", f"repeats enqueue #{first}; list each one once")
        known.append(checked)
    return tuple(known)


def _check_space_fits(
    space: Mapping[str, Param], model: str, data: str, force_augment: bool, err: Reporter
) -> None:
    """Refuse convolutions on points, space keys the model ignores, and crop_flip where it
    changes the class."""
    if data in USER_DATASETS:
        problem = pairing_problem(model, data, KIND_OF.get(data))
        if problem:
            raise err("model.name", problem)
    elif model in IMAGE_MODELS and data not in IMAGE_DATA:
        raise err("model.name", f"{model} needs images; {data} are points; use mlp")
    for key, models in MODEL_ONLY_KEYS.items():
        if key in space and model not in models and model != OWN_MODEL:
            raise err(f"space.{key}", f"applies to model {listed(models)}, not {model!r}")
    if "crop_flip" not in searched_values(space.get("augment")):
        return
    if data not in (*IMAGE_DATA, "folder", "npz"):  # an npz of features: refused when read
        raise err("space.augment", f"crop_flip needs images; {data} are not; allowed: none")
    if data not in FLIP_SAFE_DATA and not force_augment:
        raise err(
            "space.augment",
            f"crop_flip mirrors images, which can change a {data} image's class; allowed for "
            f"{listed(FLIP_SAFE_DATA)}; set [train] force_augment = true to use it anyway",
        )


def _parse_sampler(table: Mapping[str, Any], err: Reporter) -> SamplerSpec:
    _check_keys(table, "sampler", err)
    spec = SamplerSpec(**table)
    if not is_named(spec.name, SAMPLERS):
        raise err(
            "sampler.name", f"unknown sampler {spec.name!r}; choose one of: {listed(SAMPLERS)}"
        )
    if not is_seed(spec.seed):
        raise err(
            "sampler.seed",
            f"{spec.seed!r} must be an integer in [0, {MAX_SEED}] (each worker adds an offset "
            "to it, and the sum must stay a 32-bit seed)",
        )
    _check_options(spec.options, "sampler", err)
    if "seed" in spec.options:  # each worker offsets the seed: it is not the sampler's to take
        raise err("sampler.options.seed", "set the seed as [sampler] seed = N, not as an option")
    return SamplerSpec(spec.name, spec.seed, dict(spec.options))


def _parse_pruner(table: Mapping[str, Any], err: Reporter) -> PrunerSpec:
    _check_keys(table, "pruner", err)
    spec = PrunerSpec(**table)
    if not is_named(spec.name, PRUNERS):
        raise err("pruner.name", f"unknown pruner {spec.name!r}; choose one of: {listed(PRUNERS)}")
    _check_options(spec.options, "pruner", err)
    return PrunerSpec(spec.name, dict(spec.options))


def _check_options(options: Any, section: str, err: Reporter) -> None:
    if not isinstance(options, Mapping):
        raise err(f"{section}.options", f"{options!r} must be a table, e.g. {{ key = value }}")


def _drop_objective_defaults(snapshot: dict[str, Any]) -> None:
    """Leave out of a snapshot what a single-objective study without constraints would
    not have held before multi-objective studies (its stored spec stays as it was), and
    metric and direction beside metrics (which refuse them)."""
    if snapshot["metrics"]:
        snapshot["metrics"] = list(snapshot["metrics"])
        del snapshot["metric"], snapshot["direction"]
    else:
        del snapshot["metrics"]
    if not any(v is not None for v in snapshot["constraints"].values()):
        del snapshot["constraints"]
    if snapshot["latency_batch"] == 1:
        del snapshot["latency_batch"]
