"""A real single-node Slurm for tests: munged, slurmctld and slurmd (and slurmdbd on a
private MariaDB, for sacct), each started here as root, in a folder of its own.

Nothing global is touched: the configuration, state, logs, munge key and socket and the
fake GPU devices all live in the cluster's folder, and clients find it through SLURM_CONF
(`Cluster.env`). A cluster already answering at the SLURM_CONF of this environment is used
as it is and never stopped; `stop_cluster` ends only the daemons `start_cluster` started.

Settings the tests depend on:
- ProctrackType=proctrack/cgroup (cgroup v1 or v2): with proctrack/linuxproc the children of
  a cancelled batch script live on as orphans.
- DefMemPerCPU: without it each task takes the whole node's memory and tasks run one at a
  time.
- AuthInfo cred_expire=10 and sched_interval=1,bf_interval=1: a requeued task starts again
  after ~10 s instead of ~2 minutes.
- GRES gpu on mknod'ed character devices (Slurm ignores other files): tasks that ask for
  --gres=gpu:G get their own CUDA_VISIBLE_DEVICES, though there is no GPU.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel")
ACCOUNTING = ("slurmdbd", "mariadbd", "mariadb-install-db", "sacct")
FAKE_GPUS = 2  # GRES gpu devices on the node
PARTITIONS = ("debug", "other")  # the first is the default
MEM_PER_CPU_MB = 1024
START_SECONDS = 60.0  # bound on each daemon's start
STOP_SECONDS = 30.0  # bound on each daemon's stop and on the jobs' end before it
KILL_WAIT_SECONDS = 30  # a cancelled worker has this long to finish its epoch


@dataclass(frozen=True)
class Cluster:
    """A Slurm controller the tests submit to."""

    folder: Path | None  # the state folder of a cluster started here; None for a found one
    # This environment plus SLURM_CONF: pass it to every Slurm command (kept out of repr).
    env: dict[str, str] = field(repr=False)
    partitions: tuple[str, ...]  # the default partition first
    gpus: int  # GRES gpu devices of the node
    accounting: bool  # sacct answers (slurmdbd up)
    daemons: tuple[subprocess.Popen[bytes], ...] = ()  # started here: stopped, in reverse

    @property
    def partition(self) -> str:
        return self.partitions[0]


def unavailable_reason() -> str | None:
    """Why no cluster can be started here, or None."""
    if os.geteuid() != 0:
        return "Slurm's daemons must start as root (the kit runs slurmd as root)"
    missing = [name for name in REQUIRED if shutil.which(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed: run .ci/install-slurm"
    return None


def found_cluster(env: Mapping[str, str] | None = None) -> Cluster | None:
    """The cluster this environment's SLURM_CONF names, if its controller answers."""
    env = dict(os.environ if env is None else env)
    if not env.get("SLURM_CONF") or shutil.which("scontrol") is None:
        return None
    if "is UP" not in _output(["scontrol", "ping"], env):
        return None
    listed = _output(["sinfo", "-h", "-o", "%P"], env).split()
    default = [name.rstrip("*") for name in listed if name.endswith("*")]
    partitions = tuple(dict.fromkeys(default + [name.rstrip("*") for name in listed]))
    gres = _output(["sinfo", "-h", "-o", "%G"], env)
    gpus = int(gres.split("gpu:")[1].split("(")[0].split(",")[0]) if "gpu:" in gres else 0
    accounting = subprocess.run(["sacct", "-n", "-X"], env=env, capture_output=True).returncode
    return Cluster(None, env, partitions, gpus, accounting == 0)


def render_slurm_conf(
    folder: Path, *, host: str, ports: Mapping[str, int], cpus: int, memory_mb: int, dbd: bool
) -> str:
    """slurm.conf of a one-node cluster whose files all live in `folder`."""
    munge = folder / "munge" / "munge.socket"
    accounting = (
        "AccountingStorageType=accounting_storage/slurmdbd\n"
        f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={ports['slurmdbd']}\n"
        f"AccountingStoragePass={munge}\n"  # for munge: the socket sacct and slurmctld use
        if dbd
        else "AccountingStorageType=accounting_storage/none\n"
    )
    partitions = "\n".join(
        f"PartitionName={name} Nodes={host} Default={'YES' if i == 0 else 'NO'} "
        "MaxTime=INFINITE State=UP"
        for i, name in enumerate(PARTITIONS)
    )
    # Job ids of their own: two clusters on one host share the node's cgroup folders
    # (slurm_HOST/uid_0/job_ID), so equal ids would mix their jobs' processes.
    return f"""ClusterName=hpotest{ports["slurmctld"]}
FirstJobId={ports["slurmctld"] * 1000}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports["slurmctld"]}
SlurmdPort={ports["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge},cred_expire=10
StateSaveLocation={folder / "state"}
SlurmdSpoolDir={folder / "spool"}
SlurmctldPidFile={folder / "slurmctld.pid"}
SlurmdPidFile={folder / "slurmd.pid"}
SlurmctldLogFile={folder / "log" / "slurmctld.log"}
SlurmdLogFile={folder / "log" / "slurmd.log"}
ProctrackType=proctrack/cgroup
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={MEM_PER_CPU_MB}
SchedulerParameters=sched_interval=1,bf_interval=1
ReturnToService=2
MinJobAge=600
KillWait={KILL_WAIT_SECONDS}
MailProg=/bin/true
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
{accounting}GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{FAKE_GPUS} State=UNKNOWN
{partitions}
"""


def start_cluster(folder: Path, *, accounting: bool = True) -> Cluster:
    """Start munged, (MariaDB and slurmdbd,) slurmctld and slurmd with their state in
    `folder`; on any failure stop what was started and raise."""
    folder = folder.resolve()
    for sub in ("state", "spool", "log", "munge", "dev"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "munge").chmod(0o700)  # munged refuses a socket folder others can write
    dbd = accounting and all(shutil.which(name) for name in ACCOUNTING)
    ports = dict(zip(("slurmctld", "slurmd", "slurmdbd", "mariadb"), _free_ports(4), strict=True))
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(
        render_slurm_conf(
            folder,
            host=host,
            ports=ports,
            cpus=os.cpu_count() or 1,
            memory_mb=_memory_mb(),
            dbd=dbd,
        )
    )
    (folder / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")
    _make_gpu_devices(folder, host)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        daemons.append(_start_munged(folder, env))
        if dbd:
            daemons += _start_accounting(folder, env, ports)
        daemons.append(_daemon(["slurmctld", "-D", "-i"], folder / "log" / "ctld.out", env))
        _wait(lambda: "is UP" in _output(["scontrol", "ping"], env), "slurmctld", daemons)
        daemons.append(_daemon(["slurmd", "-D"], folder / "log" / "slurmd.out", env))
        _wait(lambda: _node_idle(env), "the node to be idle", daemons)
    except BaseException:
        _stop_daemons(daemons)
        raise
    return Cluster(folder, env, PARTITIONS, FAKE_GPUS, dbd, tuple(daemons))


def stop_cluster(cluster: Cluster) -> None:
    """Cancel every job of a cluster started here, wait for them, then stop its daemons
    (nothing of a found cluster is touched)."""
    if not cluster.daemons:
        return
    jobs = _output(["squeue", "-h", "-o", "%A"], cluster.env).split()
    if jobs:
        subprocess.run(["scancel", *sorted(set(jobs))], env=cluster.env, capture_output=True)
        with contextlib.suppress(AssertionError):
            _wait(lambda: not _output(["squeue", "-h"], cluster.env).strip(), "jobs to end", ())
    _stop_daemons(list(cluster.daemons))


@contextlib.contextmanager
def slurm_cluster(folder: Path) -> Iterator[Cluster]:
    """A cluster for the block: the one SLURM_CONF names if it answers, else one started
    in `folder` and stopped afterwards."""
    found = found_cluster()
    if found is not None:
        yield found
        return
    cluster = start_cluster(folder)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def _output(args: list[str], env: Mapping[str, str]) -> str:
    """stdout of a Slurm client, "" when it fails or hangs."""
    try:
        result = subprocess.run(args, env=dict(env), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout if result.returncode == 0 else ""


def _node_idle(env: Mapping[str, str]) -> bool:
    """Whether slurmd has registered and its node takes jobs."""
    return set(_output(["sinfo", "-h", "-o", "%T"], env).split()) == {"idle"}


def _free_ports(count: int) -> list[int]:
    """Ports free on loopback now (a fixed port could be taken by a cluster already here)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _memory_mb() -> int:
    """Half the machine's memory: slurmd drains a node that has less than it claims."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 // 2
    return 4096


def _make_gpu_devices(folder: Path, host: str) -> None:
    """Character devices for GRES gpu (the major of /dev/null: opening one does nothing)."""
    for index in range(FAKE_GPUS):
        device = folder / "dev" / f"gpu{index}"
        if not device.exists():
            os.mknod(device, 0o600 | 0o020000, os.makedev(1, 3))  # S_IFCHR
    devices = folder / "dev" / f"gpu[0-{FAKE_GPUS - 1}]"
    (folder / "gres.conf").write_text(f"NodeName={host} Name=gpu File={devices}\n")


def _daemon(args: list[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A daemon in the foreground of its own session, its output into `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def _start_munged(folder: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """munged with a key and a socket of this cluster's own."""
    munge = folder / "munge"
    key = munge / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
    daemon = _daemon(
        [
            "munged",
            "-F",
            "--force",
            f"--key-file={key}",
            f"--socket={munge / 'munge.socket'}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={munge / 'munged.log'}",
            f"--seed-file={munge / 'munged.seed'}",
        ],
        folder / "log" / "munged.out",
        env,
    )
    _wait(lambda: (munge / "munge.socket").exists(), "munged", [daemon])
    return daemon


def _start_accounting(
    folder: Path, env: Mapping[str, str], ports: Mapping[str, int]
) -> list[subprocess.Popen[bytes]]:
    """A private MariaDB (loopback, no grants: nothing but slurmdbd talks to it) and slurmdbd."""
    data = folder / "mariadb"
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    mariadb = _daemon(
        [
            "mariadbd",
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={folder / 'mariadb.sock'}",
            f"--port={ports['mariadb']}",
            "--bind-address=127.0.0.1",
            "--user=root",
            "--skip-grant-tables",
            "--innodb-buffer-pool-size=64M",
            f"--pid-file={folder / 'mariadb.pid'}",
        ],
        folder / "log" / "mariadb.out",
        env,
    )
    daemons = [mariadb]
    _wait(lambda: _port_open(ports["mariadb"]), "MariaDB", daemons)
    dbd_conf = folder / "slurmdbd.conf"
    dbd_conf.write_text(
        "AuthType=auth/munge\n"
        f"AuthInfo=socket={folder / 'munge' / 'munge.socket'}\n"
        f"DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={ports['slurmdbd']}\n"
        f"SlurmUser=root\nPidFile={folder / 'slurmdbd.pid'}\n"
        f"LogFile={folder / 'log' / 'slurmdbd.log'}\n"
        "StorageType=accounting_storage/mysql\n"
        f"StorageHost=127.0.0.1\nStoragePort={ports['mariadb']}\nStorageUser=root\n"
        f"StorageLoc=slurm_acct_{uuid.uuid4().hex[:8]}\n"
    )
    dbd_conf.chmod(0o600)  # slurmdbd refuses a configuration others can read
    daemons.append(_daemon(["slurmdbd", "-D"], folder / "log" / "slurmdbd.out", env))
    _wait(lambda: _port_open(ports["slurmdbd"]), "slurmdbd", daemons)
    return daemons


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(
    condition: Callable[[], object], what: str, daemons: Sequence[subprocess.Popen[bytes]]
) -> None:
    """Poll `condition` for up to START_SECONDS; fail naming `what` (and a daemon that
    exited meanwhile, whose log says why)."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        dead = [d.args[0] for d in daemons if d.poll() is not None]
        if dead:
            raise AssertionError(f"{dead[0]} exited while waiting for {what}: see its log")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {START_SECONDS:.0f} s waiting for {what}")


def _stop_daemons(daemons: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each daemon, last started first; SIGKILL one that outlives STOP_SECONDS."""
    for daemon in reversed(daemons):
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
