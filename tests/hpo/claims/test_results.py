"""hpo.claims.results: the verdict rule."""

from __future__ import annotations

import pytest

from hpo.claims.results import verdict


@pytest.mark.parametrize(
    ("agrees", "expected"),
    [
        ([True, True], "agrees"),
        ([False, False], "does not agree"),
        ([True, False], "partly agrees"),
        ([True, None], "agrees"),
        ([None], "not enough data"),
        ([], "not enough data"),
    ],
)
def test_verdict(agrees: list[bool | None], expected: str) -> None:
    assert verdict(agrees) == expected
