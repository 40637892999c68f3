"""storage: where studies live, and staying connected to it.

Owns storage URLs (urls) and what a driver error means (driver_errors); the one table from
URL scheme to storage (open); the tuned SQLite / PostgreSQL storage (rdb) and the gRPC proxy
in front of PostgreSQL (proxy_client, proxy_server), which offer the layers above one
interface; retries through outages (retry); the study lock and the study operations run
under it (locks); heartbeats and the re-queueing of dead workers' trials (heartbeats,
stale); and every private Optuna name hpo relies on (_optuna, checked by a test).

May import: hpo.errors, hpo.config.
"""
