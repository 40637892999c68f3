"""Rendering an `Agreement` (hpo.compare.agreement) as Markdown: live and replay side by side.

The cells are the comparison report's own (hpo.compare.report), so a number reads the
same here as on a report page.
"""

from __future__ import annotations

from hpo.compare.agreement import Agreement, ArmAgreement, Side
from hpo.compare.report import compute_cell, fraction_cell, num, secs


def _final(side: Side) -> str:
    return f"{num(side.final.estimate)} [{num(side.final.low)}, {num(side.final.high)}]"


def _compute(side: Side) -> str:
    c = side.compute
    return compute_cell(c.median, c.reached, c.studies)


def _fraction(side: Side, baseline: bool) -> str:
    if baseline:
        return "baseline"
    return fraction_cell(side.fraction, side.compute.reached, side.compute.studies)


def _yes(agrees: bool) -> str:
    return "yes" if agrees else "**no**"


def agreement_table(result: Agreement, metric: str) -> str:
    """One row per arm and quantity: live, replay, and whether their 95% CIs overlap."""
    lines = [
        "| arm | | live | replay | 95% CIs overlap |",
        "|---|---|---|---|---|",
    ]
    for a in result.arms:
        base = a.arm == result.baseline
        lines += [
            f"| {a.arm} | median final best {metric} [95% CI] | {_final(a.live)} "
            f"| {_final(a.replay)} | {_yes(a.final_agrees)} |",
            f"| | compute to target [95% CI] | {_compute(a.live)} | {_compute(a.replay)} "
            f"| {_yes(a.compute_agrees)} |",
            f"| | compute vs {result.baseline} [95% CI] | {_fraction(a.live, base)} "
            f"| {_fraction(a.replay, base)} | " + ("-" if base else _yes(a.fraction_agrees)) + " |",
            f"| | seeds reaching the target | {_reached(a.live)} | {_reached(a.replay)} | |",
            f"| | trials (pruned), median seconds of a trial | {_trials(a.live)} "
            f"| {_trials(a.replay)} | |",
        ]
    return "\n".join(lines)


def _reached(side: Side) -> str:
    return f"{side.compute.reached}/{side.compute.studies}"


def _trials(side: Side) -> str:
    return f"{side.trials} ({side.pruned}), {secs(side.trial_seconds)}"


def agreement_headline(result: Agreement) -> str:
    """One sentence: the target, and on which quantities the arms agree."""

    def names(pick: list[ArmAgreement]) -> str:
        return ", ".join(a.arm for a in pick) if pick else "none"

    final = [a for a in result.arms if not a.final_agrees]
    compute = [a for a in result.arms if not a.compute_agrees]
    return (
        f"Target: live {result.baseline}'s median final best ({result.target:.4f}), the same "
        f"for both sides. Arms whose live and replayed intervals do not overlap: median final "
        f"best: {names(final)}; compute to target: {names(compute)}."
    )


def per_seed_table(result: Agreement) -> str:
    """Every study's final best and compute to target, live and replayed, by seed index."""
    lines = [
        "| arm | seed | final best live | final best replay | compute to target live "
        "| compute to target replay |",
        "|---|---|---|---|---|---|",
    ]
    for a in result.arms:
        seeds = max(a.live.studies, a.replay.studies)
        for k in range(seeds):
            lines.append(
                f"| {a.arm} | {k} | {_at(a.live.finals, k)} | {_at(a.replay.finals, k)} "
                f"| {_seconds_at(a.live, k)} | {_seconds_at(a.replay, k)} |"
            )
    return "\n".join(lines)


def _at(values: tuple[float, ...], k: int) -> str:
    return num(values[k]) if k < len(values) else ""


def _seconds_at(side: Side, k: int) -> str:
    per_seed = side.compute.per_seed
    if k >= len(per_seed):
        return ""
    return "never" if per_seed[k] is None else secs(per_seed[k])
