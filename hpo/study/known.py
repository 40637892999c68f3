"""Known configurations: params a study runs first ([[enqueue]], `hpo enqueue`).

Each one is checked against the study's space like the study file itself
(hpo.config.space.known_params) and keyed by a hash of its params. The study attr KNOWN_ATTR
keeps the key of every configuration ever accepted, so that re-running a launch queues none
twice, and the configurations not queued yet. The budget's queue (hpo.study.create) places
those before anything else: into queued trials that fix nothing, so that neither the queue
nor the budget grows, then into new trials within the budget; what the budget cannot hold
waits in the attr for a larger budget. A queued trial with fixed params is what Optuna's
enqueue_trial makes: its suggest calls return them and the sampler draws the keys they
leave out; workers claim such trials before the others.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpo.config.rules import Reporter
from hpo.config.space import Param, known_params
from hpo.errors import HpoError
from hpo.study.records import KNOWN_ATTR


@dataclass(frozen=True)
class Known:
    """The known configurations of a study: every key accepted, and those still to queue."""

    keys: tuple[str, ...] = ()
    pending: tuple[dict[str, Any], ...] = ()

    def to_attr(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "pending": [dict(p) for p in self.pending]}

    def queued(self, count: int) -> Known:
        """After the first `count` pending configurations went into the queue."""
        return Known(self.keys, self.pending[count:])


def config_key(params: Mapping[str, Any]) -> str:
    """A configuration's key: the same params (checked, so normalized) give the same key."""
    text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def known_of(study_name: str, attrs: Mapping[str, Any]) -> Known:
    """The known configurations stored with a study; one line if the attr is not one."""
    stored = attrs.get(KNOWN_ATTR)
    if stored is None:
        return Known()
    keys = stored.get("keys") if isinstance(stored, dict) else None
    pending = stored.get("pending") if isinstance(stored, dict) else None
    shaped = isinstance(keys, list) and all(isinstance(k, str) for k in keys)
    if not shaped or not isinstance(pending, list) or not all(isinstance(p, dict) for p in pending):
        raise HpoError(
            f"study {study_name!r} has a corrupt list of known configurations ({KNOWN_ATTR}); "
            "launch the study file under a new name (--name NEW_NAME)"
        )
    return Known(tuple(keys), tuple(pending))


def accept(known: Known, configs: Sequence[Mapping[str, Any]]) -> tuple[Known, int]:
    """`known` with the configurations it has no key of added to its pending ones; and how
    many were added (the others were accepted before)."""
    keys, pending = list(known.keys), list(known.pending)
    for params in configs:
        key = config_key(params)
        if key not in keys:
            keys.append(key)
            pending.append(dict(params))
    return Known(tuple(keys), tuple(pending)), len(keys) - len(known.keys)


def checked_configs(configs: Sequence[Any], space: Mapping[str, Param]) -> list[dict[str, Any]]:
    """Configurations given on the command line, each checked against the study's space;
    SpecError naming the first bad one (and which --params it is, when there are several)."""
    err = Reporter("--params")
    return [
        known_params(params, space, err, where=f"#{n}" if len(configs) > 1 else "")
        for n, params in enumerate(configs, start=1)
    ]
