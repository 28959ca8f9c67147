"""Server processes for the comparison: start on 127.0.0.1 and free ports, measure CPU, stop.

Every server runs with its data under the run's temporary directory and is registered with a
`ServerPool`, which stops all of them (SIGTERM, then SIGKILL after a grace period) when the pool
exits -- on success, on an exception and on Ctrl-C alike.  CPU seconds of a server come from
/proc/<pid>/stat (utime + stime over all its threads), so no extra dependency is needed.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


class NotAvailable(Exception):
    """A contender cannot run here; the message is the reason shown as "n/a: <reason>"."""


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago (the usual small race)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> float:
    """Wait until 127.0.0.1:port accepts a connection; returns seconds waited.

    Raises NotAvailable if the process exits first or the port stays closed."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise NotAvailable(f"server exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.perf_counter() - t0
        except OSError:
            time.sleep(0.02)
    raise NotAvailable(f"port {port} not accepting after {timeout:.0f} s")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads) from /proc, in seconds; 0.0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    # The command name (field 2) may contain spaces; fields after ')' are space-separated.
    rest = stat[stat.rindex(b")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (VmRSS), 0.0 if unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def ensure_tools(binaries: dict[str, str], install: bool) -> dict[str, str]:
    """Install missing Debian packages (binary -> package) with apt-get when `install` is set.

    Returns {binary: reason} for every binary still missing afterwards."""
    missing = {b: p for b, p in binaries.items() if shutil.which(b) is None}
    if missing and install:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        print(f"installing {' '.join(sorted(set(missing.values())))} with apt-get ...", flush=True)
        try:
            subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
            pkgs = sorted(set(missing.values()))
            subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", *pkgs],
                           env=env, check=False, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=600)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return {b: f"{b} not on PATH (apt-get install {p})" for b, p in binaries.items()
            if shutil.which(b) is None}


def ensure_python_packages(modules: dict[str, str], install: bool) -> dict[str, str]:
    """pip-install missing Python packages (module -> pip name) into this interpreter.

    Returns {module: reason} for every module still not importable."""
    import importlib
    import importlib.util
    missing = {m: p for m, p in modules.items() if importlib.util.find_spec(m) is None}
    if missing and install:
        print(f"pip installing {' '.join(sorted(missing.values()))} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *sorted(missing.values())],
                       check=False, timeout=600)
        importlib.invalidate_caches()
    return {m: f"python module {m} missing (pip install {p})" for m, p in modules.items()
            if importlib.util.find_spec(m) is None}


@dataclass
class Server:
    """One running server process and what the runner needs to talk to it."""
    name: str
    proc: subprocess.Popen
    port: int
    data_dir: Path
    startup_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pids(self) -> list[int]:
        """The server's process, or with extra["group"] every process of its process group
        (RabbitMQ's start script stays the parent of the Erlang VM)."""
        if not self.extra.get("group"):
            return [self.proc.pid]
        pids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if os.getpgid(int(d)) == self.proc.pid:
                        pids.append(int(d))
                except OSError:
                    pass
        return pids

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(p) for p in self._pids())

    def rss_mib(self) -> float:
        return sum(proc_rss_mib(p) for p in self._pids())

    def alive(self) -> bool:
        return self.proc.poll() is None


class ServerPool:
    """Starts servers and guarantees they all stop (context manager; also on SIGTERM)."""

    def __init__(self, root: Path):
        self.root = root
        self.servers: list[Server] = []
        self.logs: list = []

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()

    def start(self, name: str, argv: list[str], port: int, data_dir: Path,
              env: dict | None = None, timeout: float = 15.0) -> Server:
        """Run argv (already containing port and data dir), wait for the port, register it."""
        data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{name}.log", "wb")
        self.logs.append(log)
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir,
                                    env=env, start_new_session=True)
        except OSError as e:
            raise NotAvailable(f"cannot start {argv[0]}: {e}") from e
        server = Server(name, proc, port, data_dir)
        self.servers.append(server)
        try:
            wait_port(port, proc, timeout)
        except NotAvailable as e:
            lines = (self.root / f"{name}.log").read_bytes()[-2000:].decode(
                errors="replace").strip().splitlines()
            self.stop(server)
            raise NotAvailable(f"{name}: {e}; last log line: {(lines or [''])[-1][:200]}") from e
        server.startup_s = time.perf_counter() - t0
        return server

    def stop(self, server: Server, grace: float = 10.0) -> None:
        """SIGTERM, wait up to `grace` s, then SIGKILL the server's process group."""
        if server.proc.poll() is None:
            try:
                os.killpg(server.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                server.proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(server.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                server.proc.wait(5)
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        for server in reversed(self.servers):       # last started first (RabbitMQ, its epmd)
            self.stop(server)
        for log in self.logs:
            log.close()
        self.logs.clear()


# ---- the peers -----------------------------------------------------------------------------

def start_redis(pool: ServerPool, name: str, persistence: str) -> Server:
    """redis-server with persistence "none", "everysec" or "always" (AOF appendfsync)."""
    port = free_port()
    data = pool.root / name
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--dir", str(data), "--protected-mode", "no", "--daemonize", "no",
            "--logfile", ""]
    if persistence == "none":
        argv += ["--appendonly", "no"]
    else:
        argv += ["--appendonly", "yes", "--appendfsync", persistence]
    server = pool.start(name, argv, port, data)
    server.extra["persistence"] = persistence
    return server


def start_nats(pool: ServerPool, name: str = "nats-js") -> Server:
    """nats-server with JetStream, file store under the run's temp dir."""
    port = free_port()
    data = pool.root / name
    argv = ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data)]
    return pool.start(name, argv, port, data)


def _help_flags(exe: str) -> str:
    try:
        return subprocess.run([exe, "--help"], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def start_pylog_server(pool: ServerPool, name: str = "pylog-server") -> Server:
    """pylog-server with its Kafka listener on a free 127.0.0.1 port, data in the run's dir.

    The text and HTTP listeners, when the server has them, also get free ports (so a developer's
    running server on the default ports never collides).  Flags are taken from `--help`, so the
    runner keeps working while the server grows; a missing console script is reported n/a."""
    exe = shutil.which("pylog-server") or str(Path(sys.executable).parent / "pylog-server")
    if not Path(exe).exists():
        raise NotAvailable("pylog-server console script not installed (pip install -e .)")
    flags = _help_flags(exe)
    port = free_port()
    data = pool.root / name
    argv = [exe, "--data-dir", str(data)]
    if "--kafka-listener" in flags:
        argv += ["--kafka-listener", f"127.0.0.1:{port}"]
    elif "--kafka-port" in flags:
        argv += ["--kafka-port", str(port)]
    else:
        raise NotAvailable("pylog-server --help shows no Kafka listener flag")
    for listener in ("text", "http"):
        if f"--{listener}-listener" in flags:
            argv += [f"--{listener}-listener", f"127.0.0.1:{free_port()}"]
    return pool.start(name, argv, port, data, timeout=20.0)


def _rabbitmq_exe() -> str | None:
    """The broker script itself: /usr/sbin/rabbitmq-server re-executes as the rabbitmq user,
    which cannot write the run's temporary directory."""
    direct = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    return str(direct) if direct.exists() else shutil.which("rabbitmq-server")


def start_rabbitmq(pool: ServerPool, name: str = "rabbitmq") -> Server:
    """rabbitmq-server (Debian's) with a private node name, ports, epmd, mnesia and logs
    under the run's temp dir; no systemd.  Its own epmd runs as a pool server too, so both
    stop with the pool (RabbitMQ stops cleanly on SIGTERM)."""
    exe, epmd = _rabbitmq_exe(), shutil.which("epmd")
    if exe is None or epmd is None:
        raise NotAvailable("rabbitmq-server not installed (apt-get install rabbitmq-server)")
    data = pool.root / name
    epmd_port, port, dist_port = free_port(), free_port(), free_port()
    pool.start(f"{name}-epmd", [epmd, "-port", str(epmd_port)], epmd_port, data / "epmd")
    (data / "enabled_plugins").write_text("[].\n")
    env = dict(os.environ, HOME=str(data), ERL_EPMD_PORT=str(epmd_port),
               RABBITMQ_NODENAME=f"bench{port}@localhost", RABBITMQ_NODE_PORT=str(port),
               RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_DIST_PORT=str(dist_port),
               RABBITMQ_MNESIA_BASE=str(data / "mnesia"), RABBITMQ_LOG_BASE=str(data / "log"),
               RABBITMQ_PID_FILE=str(data / "pid"),
               RABBITMQ_ENABLED_PLUGINS_FILE=str(data / "enabled_plugins"),
               RABBITMQ_CONFIG_FILE=str(data / "rabbitmq"),
               RABBITMQ_ADVANCED_CONFIG_FILE=str(data / "advanced.config"),
               RABBITMQ_CONF_ENV_FILE=str(data / "rabbitmq-env.conf"))
    server = pool.start(name, [exe], port, data, env=env, timeout=90.0)
    server.extra["group"] = True
    return server
