"""Shared helpers of the benchmarks: the machine banner, load, medians, PostgreSQL DBs."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy

# Run as `python3 benchmarks/NAME.py` from the repository root: make `benchmarks` and the
# project importable without installing anything else.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load() -> str:
    """The 1/5/15-minute load averages, as `uptime` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    """Cores, CPU model and GPUs: what a figure measured in seconds depends on."""
    import torch

    gpu = "none"
    if torch.cuda.is_available():
        gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return f"{os.cpu_count()} cores, {cpu_model()}, GPU: {gpu}"


def banner(title: str) -> str:
    """One block naming the machine and the software: printed first by every benchmark."""
    import optuna
    import torch

    lines = [
        f"== {title} ==",
        f"machine: {machine()}",
        f"python {platform.python_version()}, torch {torch.__version__} "
        f"(threads {torch.get_num_threads()}), optuna {optuna.__version__}",
        f"load average at start: {load()}",
    ]
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextlib.contextmanager
def fresh_postgres(admin_url: str = PG_ADMIN_URL) -> Iterator[str | None]:
    """A new, empty PostgreSQL database for one benchmark, dropped afterwards.

    Yields None (and the caller skips PostgreSQL) when the server is not reachable.
    """
    import sqlalchemy

    admin = sqlalchemy.create_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    name = f"hpo_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sqlalchemy.exc.OperationalError as exc:
        print(f"PostgreSQL not reachable ({str(exc).splitlines()[0]}): skipped")
        admin.dispose()
        yield None
        return
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# A study of zero-cost trials (the objective only suggests `x`: tests.helpers.zero_cost), so
# that a benchmark measures the storage path alone. Format with name= and trials=.
ZERO_COST_STUDY = """
[study]
name = "{name}"
trials = {trials}
[model]
name = "mlp"
[data]
name = "rings"
[sampler]
name = "random"
[space]
lr = {{ low = 1e-3, high = 1e-1, log = true }}
"""


class PgActivitySampler(threading.Thread):
    """Samples pg_stat_activity of one database every `every` seconds until stopped."""

    def __init__(self, admin: sqlalchemy.Engine, database: str, every: float) -> None:
        super().__init__(daemon=True)
        self.admin, self.database, self.every = admin, database, every
        self.done = threading.Event()
        self.samples: list[Counter[str]] = []  # connections by application_name, per sample

    def run(self) -> None:
        import sqlalchemy

        query = sqlalchemy.text(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = :database GROUP BY application_name"
        )
        with self.admin.connect() as connection:
            while not self.done.wait(self.every):
                rows = connection.execute(query, {"database": self.database}).all()
                self.samples.append(Counter(dict(rows)))


def figure(name: str, values: Sequence[float], unit: str = "") -> None:
    """Print one headline figure as a line `benchmarks/check_figures.py` reads back.

    `values` are the figure's per-round (or per-pair) measurements: the line gives their
    median and their spread (min, max), so a later run can be judged against it.
    """
    finite = [v for v in values if v == v]  # NaN != NaN: a round that measured nothing
    if not finite:
        print(f"figure: {name} none{' ' + unit if unit else ''}")
        return
    cells = f"median={median(finite):.4g} min={min(finite):.4g} max={max(finite):.4g}"
    print(f"figure: {name} {cells} n={len(finite)}{' ' + unit if unit else ''}")


def count(name: str, value: float) -> None:
    """Print a count (lost trials, statements, connections): a later run must equal it."""
    print(f"figure: {name} count={value:g}")
