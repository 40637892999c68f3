"""hpo.claims.analyze: every claim judged, in the report's order."""

from __future__ import annotations

from hpo.claims.analyze import analyze
from tests.hpo.claims.kit import claim, drop_run, lr_run


def test_analyze_orders_claims_as_the_report_does_and_skips_unknown_ones() -> None:
    runs = [
        claim("dropout", [drop_run(0.0, 1.0, 0.9, 0.0, 0.3)]),
        claim("from-the-future", []),
        claim("batchnorm-lr", [lr_run(True, 0.1, 0.9)]),
    ]
    results = analyze(runs)
    assert [r.name for r in results] == ["batchnorm-lr", "dropout"]
    assert results[0].title == "BatchNorm allows higher learning rates"
    assert results[0].runs == 1
