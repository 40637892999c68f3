"""runtime: processes that run trials, and where they run.

Owns the worker loop (worker: claim a queued trial, heartbeat, run, tell, stop on request),
local launching (launch: in-process or spawned workers, K per GPU), device selection with
memory and thread shares (devices) and the artifact folder's check before anything is
written (artifacts); schedulers (Slurm arrays, Kubernetes manifests) start
the same `hpo worker`.

May import: hpo.errors, hpo.config, hpo.storage, hpo.study, hpo.training, models.
"""
