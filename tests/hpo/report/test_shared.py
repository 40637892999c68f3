"""hpo.report.shared: the pieces every report shares."""

from __future__ import annotations

from pathlib import Path

from hpo.report.shared import COLORS, md_table, palette_color, plotly_script, rgba


def test_md_table_has_a_header_rule_and_one_line_per_row() -> None:
    assert md_table(["a", "b"], [["1", "2"], ["3", "4"]]) == (
        "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |"
    )


def test_the_palette_repeats_and_fills_are_rgba() -> None:
    assert palette_color(len(COLORS)) == palette_color(0) == "#1f77b4"
    assert rgba("#1f77b4", 0.2) == "rgba(31,119,180,0.2)"


def test_plotly_js_is_written_once_beside_the_page_or_inlined(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert plotly_script(page) == '<script src="plotly.min.js"></script>'
    js = tmp_path / "plotly.min.js"
    js.write_text("kept", encoding="utf-8")
    plotly_script(page)
    assert js.read_text(encoding="utf-8") == "kept"  # an existing copy is not rewritten
    inline = plotly_script(tmp_path / "other" / "report.html", inline_js=True)
    assert inline.startswith("<script>") and len(inline) > 1_000_000
    assert not (tmp_path / "other").exists()
