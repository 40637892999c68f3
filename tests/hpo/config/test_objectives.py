"""`[study] metrics`, `[constraints]` and `latency_batch`: good input and every refusal."""

from __future__ import annotations

import tomllib

import pytest

from hpo.config.objectives import ConstraintSpec
from hpo.config.spec import parse_spec, spec_from_dict
from hpo.errors import SpecError
from tests.helpers import run_main

BASE = '[study]\nname = "s"\n{study}\n[model]\nname = "mlp"\n{rest}'


def parse(study: str, rest: str = ""):
    from hpo.study.samplers import check_options

    raw = tomllib.loads(BASE.format(study=study, rest=rest))
    return check_options(parse_spec(raw, source="f.toml"), source="f.toml")


def test_metrics_set_directions_and_round_trip() -> None:
    spec = parse(
        'metrics = ["val_accuracy", "params", "latency_ms"]\nlatency_batch = 8',
        "[constraints]\nmax_params = 100_000\nmax_latency_ms = 2\n",
    )
    assert spec.objectives == ("val_accuracy", "params", "latency_ms")
    assert spec.directions == ("maximize", "minimize", "minimize")
    assert spec.constraints == ConstraintSpec(max_params=100_000, max_latency_ms=2.0)
    assert spec.latency_batch == 8
    # beside metrics: no pruner, no kept models, unless given (and then refused)
    assert (spec.pruner.name, spec.keep) == ("none", 0)
    assert spec_from_dict(spec.to_dict()) == spec


def test_a_single_objective_spec_keeps_its_snapshot_and_takes_constraints() -> None:
    plain = parse("")
    assert plain.objectives == ("val_accuracy",) and plain.directions == ("maximize",)
    assert not {"metrics", "constraints", "latency_batch"} & set(plain.to_dict())
    limited = parse(
        'metric = "val_loss"', '[constraints]\nmax_params = 500\n[pruner]\nname = "median"\n'
    )
    assert limited.directions == ("minimize",) and limited.pruner.name == "median"
    assert limited.constraints.limits() == {"max_params": 500}
    assert spec_from_dict(limited.to_dict()) == limited


BAD = {
    "unknown metric": ('metrics = ["val_accuracy", "flops"]', "", "unknown metric 'flops'"),
    "close name": ('metrics = ["val_accuracy", "param"]', "", "did you mean 'params'"),
    "one metric": ('metrics = ["val_accuracy"]', "", "1 metric(s)"),
    "four metrics": (
        'metrics = ["val_accuracy", "params", "latency_ms", "train_seconds"]',
        "",
        "4 metric(s)",
    ),
    "empty": ("metrics = []", "", "is empty"),
    "not a list": ('metrics = "params"', "", "must be a list"),
    "duplicate": ('metrics = ["params", "params"]', "", "'params' is listed twice"),
    "direction beside": (
        'metrics = ["val_accuracy", "params"]\ndirection = "maximize"',
        "",
        "study.direction: cannot stand beside metrics",
    ),
    "metric beside": (
        'metrics = ["val_accuracy", "params"]\nmetric = "val_loss"',
        "",
        "study.metric: cannot stand beside metrics",
    ),
    "pruner beside": (
        'metrics = ["val_accuracy", "params"]',
        '[pruner]\nname = "median"\n',
        "pruner.name: 'median': a pruner compares one learning curve",
    ),
    "stop_after beside": (
        'metrics = ["val_accuracy", "params"]\nstop_after = 3',
        "",
        "study.stop_after: needs one best value",
    ),
    "keep beside": ('metrics = ["val_accuracy", "params"]\nkeep = 2', "", "study.keep: 2"),
    "unmeasured constraint": ("", "[constraints]\nmax_flops = 3\n", "constraints.max_flops"),
    "constraint on accuracy": ("", "[constraints]\nmin_val_accuracy = 0.9\n", "no such limit"),
    "zero params": ("", "[constraints]\nmax_params = 0\n", "constraints.max_params: 0"),
    "negative params": ("", "[constraints]\nmax_params = -5\n", "constraints.max_params: -5"),
    "float params": ("", "[constraints]\nmax_params = 1.5\n", "must be an integer"),
    "zero latency": ("", "[constraints]\nmax_latency_ms = 0\n", "max_latency_ms: 0"),
    "negative latency": ("", "[constraints]\nmax_latency_ms = -1.0\n", "max_latency_ms: -1.0"),
    "nan latency": ("", "[constraints]\nmax_latency_ms = nan\n", "max_latency_ms: nan"),
    "latency batch zero": ("latency_batch = 0", "", "study.latency_batch: 0"),
    "latency batch bool": ("latency_batch = true", "", "study.latency_batch: True"),
}


@pytest.mark.parametrize("study, rest, message", BAD.values(), ids=BAD.keys())
def test_bad_objectives_are_refused_naming_the_key(study: str, rest: str, message: str) -> None:
    with pytest.raises(SpecError, match=r"^f\.toml: ") as info:
        parse(study, rest)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_constraints_must_be_a_table() -> None:
    raw = tomllib.loads(BASE.format(study="", rest=""))
    with pytest.raises(SpecError, match="constraints: must be a table"):
        parse_spec({**raw, "constraints": 3}, source="f.toml")


@pytest.mark.parametrize(
    "study, rest, message",
    [BAD["unknown metric"], BAD["direction beside"], BAD["zero params"], BAD["pruner beside"]],
    ids=["unknown metric", "direction beside", "zero params", "pruner beside"],
)
def test_the_cli_refuses_them_in_one_line_and_writes_nothing(
    study: str, rest: str, message: str, tmp_path
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(BASE.format(study=study, rest=rest))
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    code, out, err = run_main("--storage", url, "launch", "study", str(path), "--workers", "1")
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not (tmp_path / "hpo.db").exists()


def test_a_comparison_arm_with_a_pruner_is_refused_beside_metrics() -> None:
    from hpo.compare.run import plan_comparison

    spec = parse('metrics = ["val_accuracy", "params"]')
    plan = plan_comparison(spec, "random,nsga2", seeds=1, trials=2)
    assert [arm.spec.pruner.name for arm in plan.arms] == ["none", "none"]
    with pytest.raises(SpecError, match=r"pruner\.name: 'median': a pruner compares one"):
        plan_comparison(spec, "random,tpe+median", seeds=1, trials=2)
