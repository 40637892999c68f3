"""hpo.training.latency: eval mode, warm-up, the median of timed passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hpo.training import latency


class Slow(nn.Module):
    """Sleeps longer on its first calls (warm-up) and records its mode on each call."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        self.calls += 1
        return x


def test_latency_times_in_eval_mode_after_warm_up_and_restores_the_mode(monkeypatch) -> None:
    clock = iter(float(t) / 1000 for t in range(0, 10_000, 1))  # each read advances 1 ms
    model = Slow().train()
    # passes 1..3 are warm-up; the timed ones read the clock twice: 1 ms apart
    monkeypatch.setattr(latency.time, "perf_counter", lambda: next(clock))
    ms = latency.latency_ms(model, torch.zeros(2, 3), warmup=3, repeats=5)
    assert ms == pytest.approx(1.0)
    assert model.calls == 8 and model.modes == [False] * 8
    assert model.training  # restored


def test_the_median_ignores_an_outlier(monkeypatch) -> None:
    times = iter([0.0, 0.001, 0.0, 0.5, 0.0, 0.001])  # one pass descheduled: 500 ms
    monkeypatch.setattr(latency.time, "perf_counter", lambda: next(times))
    assert latency.latency_ms(nn.Identity(), torch.zeros(1), warmup=0, repeats=3) == pytest.approx(
        1.0
    )


def test_a_real_network_takes_longer_at_a_larger_batch() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 10))
    small = latency.latency_ms(net, torch.zeros(1, 256))
    large = latency.latency_ms(net, torch.zeros(512, 256))
    assert 0 < small < large


def test_the_latency_batch_repeats_samples_when_there_are_fewer() -> None:
    samples = torch.arange(6.0).reshape(3, 2)
    assert latency.latency_batch(samples, 2).tolist() == [[0, 1], [2, 3]]
    assert latency.latency_batch(samples, 7).shape == (7, 2)
    assert latency.latency_batch(samples, 7)[6].tolist() == [0, 1]
    with pytest.raises(ValueError):
        latency.latency_batch(samples[:0], 1)
