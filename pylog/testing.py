"""A pytest plugin: a real pylog-server for your tests, on an ephemeral port.

Installed with pylog (entry point ``pytest11``), so any project that has pylog
installed gets the fixtures without configuration::

    def test_my_consumer(pylog_server):          # "127.0.0.1:PORT"
        producer = confluent_kafka.Producer({"bootstrap.servers": pylog_server})
        ...

``pylog_server`` starts ``pylog-server`` as a subprocess (its own process, so a
test can't share or corrupt the broker's state) on 127.0.0.1 with port 0 and a
fresh temporary data directory, reads the listener address it prints, yields
it, and stops the server with SIGTERM after the test (then SIGKILL if it has
not exited within 10 s).  ``pylog_server_factory`` starts more servers or
servers with options (``factory(data_dir=..., args=["--num-partitions", "3"])``)
and returns ``PylogServer`` handles with ``stop()``, ``kill()`` and ``restart()``.
Outside pytest, ``start_server()`` does the same.

On Linux the server gets SIGTERM when the process that started it dies (a crashed
or killed test run leaves no broker behind).  The kernel ties this to the starting
*thread*, so start servers from a thread that outlives them (pytest's main thread).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["PylogServer", "start_server", "pylog_server", "pylog_server_factory"]

_LISTENING = re.compile(r"kafka listening on ([^\s,]+):(\d+)")
_OTHER_LISTENER = re.compile(r"(text|http) (?:listening )?on ([^\s,]+):(\d+)")
_KAFKA_LISTENER = re.compile(r"kafka (?:listening on ([^\s,]+):(\d+)(?: \((\w+)\))?|"
                             r"(\w+) on ([^\s,]+):(\d+))")


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM it when the test process dies, so a
    crashed or killed test run leaves no server behind."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class PylogServer:
    """A running ``pylog-server`` subprocess."""

    def __init__(self, data_dir: str | os.PathLike, args: list[str] | None = None,
                 env: dict[str, str] | None = None, port: int = 0,
                 startup_timeout: float = 20.0) -> None:
        self.data_dir = Path(data_dir)
        self.args = list(args or [])
        self.env = env
        self.requested_port = port
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.host, self.port = "127.0.0.1", port
        self.listeners: dict[str, str] = {}    # security protocol -> "host:port"
        self.text_port: int | None = None     # text protocol and HTTP listeners (ephemeral)
        self.http_port: int | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.server.log"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "PylogServer":
        cmd = [sys.executable, "-m", "pylog.server.main", "--data-dir", str(self.data_dir),
               "--kafka-listener", f"127.0.0.1:{self.requested_port}",
               "--text-port", "0", "--http-port", "0", *self.args]
        env = dict(os.environ)
        env.update(self.env or {})
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log_file, env=env,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        finally:
            log_file.close()
        deadline = time.monotonic() + self.startup_timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            for k in _KAFKA_LISTENER.finditer(line.decode("utf-8", "replace")):
                if k.group(1):
                    self.listeners[k.group(3) or "PLAINTEXT"] = f"{k.group(1)}:{k.group(2)}"
                else:
                    self.listeners[k.group(4)] = f"{k.group(5)}:{k.group(6)}"
            for other in _OTHER_LISTENER.finditer(line.decode("utf-8", "replace")):
                setattr(self, f"{other.group(1)}_port", int(other.group(3)))
            match = _LISTENING.search(line.decode("utf-8", "replace"))
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                return self
        self.kill()
        raise RuntimeError(f"pylog-server did not start (exit {self.process.returncode}); "
                           f"log:\n{self.log_text()[-4000:]}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (graceful shutdown); SIGKILL after ``timeout``.  Returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self.process.stdout.close()

    def kill(self) -> int:
        """SIGKILL: a crash, for recovery tests."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait()
        if self.process.stdout and not self.process.stdout.closed:
            self.process.stdout.close()
        return code

    def restart(self) -> "PylogServer":
        """Start again on the same data directory and, when possible, the same port."""
        self.stop()
        self.requested_port = self.port
        try:
            return self.start()
        except RuntimeError:
            self.requested_port = 0          # the port was taken meanwhile
            return self.start()

    def __enter__(self) -> "PylogServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(data_dir: str | os.PathLike | None = None, args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> PylogServer:
    """Start a pylog-server (temporary data directory when none is given)."""
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="pylog-")) / "data"
    return PylogServer(data_dir, args, env).start()


try:
    import pytest
except ImportError:                  # pylog.testing used outside pytest
    pytest = None

if pytest is not None:
    @pytest.fixture
    def pylog_server_factory(tmp_path_factory):
        """Start servers with options; every one is stopped after the test."""
        started: list[PylogServer] = []

        def factory(data_dir=None, args=None, env=None) -> PylogServer:
            if data_dir is None:
                data_dir = tmp_path_factory.mktemp("pylog") / "data"
            server = PylogServer(data_dir, args, env).start()
            started.append(server)
            return server

        yield factory
        for server in started:
            server.stop()

    @pytest.fixture
    def pylog_server(pylog_server_factory) -> str:
        """Bootstrap address ("127.0.0.1:PORT") of a fresh pylog-server."""
        return pylog_server_factory().bootstrap
