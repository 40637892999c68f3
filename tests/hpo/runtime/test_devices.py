"""GPU selection and CPU thread shares."""

from __future__ import annotations

import pytest

from hpo.errors import HpoError
from hpo.runtime import devices
from hpo.runtime.devices import parse_gpus, threads_per_worker


@pytest.mark.parametrize(
    "text, available, expected",
    [
        ("all", 4, [0, 1, 2, 3]),
        ("all", 0, []),
        ("none", 4, []),
        ("2,3", 4, [2, 3]),
        (" 1 ", 2, [1]),
    ],
)
def test_parse_gpus(text: str, available: int, expected: list[int]) -> None:
    assert parse_gpus(text, available) == expected


@pytest.mark.parametrize(
    "text, available, message",
    [
        ("4", 4, "GPU 4 is not visible here (visible: 0-3)"),
        ("0", 0, "visible: none"),
        ("a,b", 2, "use all, none, or indices"),
        ("1,1", 2, "repeated"),
    ],
)
def test_bad_gpu_lists(text: str, available: int, message: str) -> None:
    with pytest.raises(HpoError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_gpus(text, available)


@pytest.mark.parametrize(
    "workers, cores, expected", [(1, 16, 16), (2, 16, 8), (3, 16, 5), (32, 16, 1)]
)
def test_threads_share_the_cores_without_oversubscribing(workers, cores, expected) -> None:
    threads = threads_per_worker(workers, cores)
    assert threads == expected
    assert threads * workers <= max(cores, workers)


def test_threads_share_the_cpus_this_process_may_use_not_the_machines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda _pid: {2, 3, 4, 5}, raising=False)
    assert threads_per_worker(2) == 2  # taskset -c 2-5: four CPUs, not 64
    monkeypatch.delattr(devices.os, "sched_getaffinity")  # macOS has none
    assert threads_per_worker(2) == 32
