"""hpo.config.paths: user-given names become one short, safe, distinct folder name."""

from __future__ import annotations

import re

import pytest

from hpo.config.paths import safe_folder_name

NAMES = [
    "/tmp/x/Y",
    "../../Y",
    "Y",
    "a/b",
    "a b",
    "a_b",
    "A_b",  # case-insensitive file systems must not merge it with a_b
    "比較実験",
    "比較",
    "..",
    ".",
    "-rf",
    "C:\\x\\Y",
    "x" * 300,
    "x" * 299 + "y",  # same 40-character prefix as the one above
]


@pytest.mark.parametrize("name", NAMES)
def test_a_name_becomes_one_short_plain_component(name: str) -> None:
    folder = safe_folder_name(name)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", folder), folder
    assert folder not in (".", "..")
    assert len(folder) <= 51
    assert safe_folder_name(name) == folder  # stable


def test_names_differing_only_in_what_is_replaced_stay_apart() -> None:
    folders = [safe_folder_name(n) for n in NAMES]
    assert len(set(folders)) == len(NAMES)
    assert len({f.lower() for f in folders}) == len(NAMES)


def test_the_readable_part_is_kept() -> None:
    assert safe_folder_name("digits-cnn").startswith("digits-cnn-")
    assert safe_folder_name("/tmp/x/Y").startswith("tmp_x_Y-")
    assert safe_folder_name("../../Y").startswith("Y-")
    assert safe_folder_name("x" * 300).startswith("x" * 40 + "-")
