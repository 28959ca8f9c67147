"""``pylog-server``: open the data directory, serve the Kafka protocol, shut down cleanly.

Startup prints one line per listener to stdout (``pylog-server: kafka
listening on 127.0.0.1:9092``) — the pytest plugin reads it to learn an
ephemeral port.  SIGTERM and SIGINT run the shutdown steps in ``app.Server`` and
then close the Log (flush, checkpoints, clean-shutdown marker); exit status 0.
A second instance on the same data directory exits 1 with the holder's pid.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import signal
import sys
import time

from .settings import ConfigError, ServerConfig, parse_config

__all__ = ["main", "serve"]

log = logging.getLogger("pylog.server")


def _install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def _cluster_id(data_dir: str) -> str:
    """A cluster id that stays the same across restarts of one data directory (Kafka
    keeps its own in meta.properties); derived from the directory's real path."""
    digest = hashlib.sha256(os.path.realpath(data_dir).encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def _settings(config: ServerConfig):
    from .kafka.context import GROUP_SETTINGS, BrokerSettings
    return BrokerSettings(cluster_id=_cluster_id(config.data_dir),
                          advertised_host=config.advertised_host,
                          advertised_port=config.advertised_port,
                          auto_create_topics=config.auto_create_topics,
                          num_partitions=config.num_partitions,
                          max_request_bytes=config.max_request_bytes,
                          group_initial_rebalance_delay_ms=(
                              config.group_initial_rebalance_delay_ms),
                          **{k: getattr(config, k) for k in GROUP_SETTINGS})


def _report_recovery(plog) -> None:
    for report in getattr(plog, "recovery_reports", None) or ():
        if getattr(report, "truncated_bytes", 0) or getattr(report, "dropped_bytes", 0):
            log.warning("recovery: %s", report)
        else:
            log.debug("recovery: %s", report)


def _import_interfaces():
    from .http import HttpServer
    from .metrics import CommittedOffsets
    from .text import TextServer
    return HttpServer, CommittedOffsets, TextServer


async def _start_interfaces(server, config: ServerConfig) -> list:
    """The text and HTTP listeners (issue 6) over the Kafka server's broker.

    A port given explicitly must bind (else startup fails); the default ports
    (3000, 8081) are skipped with a warning when taken, so several servers can
    run side by side on their Kafka ports alone.
    """
    if all(port is not None and port < 0 for port in (config.text_port, config.http_port)):
        return []
    # aiohttp takes about half a second to import: do it in a worker thread so the Kafka
    # listener, already open, answers requests meanwhile.
    loop = asyncio.get_running_loop()
    HttpServer, CommittedOffsets, TextServer = await loop.run_in_executor(
        None, _import_interfaces)
    host = config.kafka_address[0]
    offsets = CommittedOffsets(server.broker)
    deadline = {"cap": server.cap, "request_timeout_s": config.request_timeout_ms / 1000}
    wanted = [(TextServer, config.text_port, 3000, {"idle_s": config.idle_ms / 1000, **deadline}),
              (HttpServer, config.http_port, 8081, {"idle_s": config.idle_ms / 1000, **deadline})]
    started = []
    for cls, port, default, extra in wanted:
        if port is not None and port < 0:
            continue
        listener = cls(server.broker, host, default if port is None else port,
                       offsets=offsets, **extra)
        try:
            await listener.start()
        except OSError as exc:
            if port is not None:
                raise
            log.warning("%s listener not started: %s:%d: %s (set --%s-port)", cls.kind,
                        host, default, exc.strerror or exc, cls.kind)
            continue
        started.append(listener)
    return started


async def serve(config: ServerConfig, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT), then shut down in order."""
    import pylog
    from .app import Server

    started = time.monotonic()
    plog = pylog.open(config.data_dir)
    try:
        _report_recovery(plog)
        host, port = config.kafka_address
        server = Server(plog, host, port, _settings(config), idle_ms=config.idle_ms,
                        request_timeout_ms=config.request_timeout_ms,
                        max_connections=config.max_connections)
        await server.start()
        interfaces = await _start_interfaces(server, config)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):     # not the main thread
                pass
        for listener in interfaces:          # before the kafka line: pylog.testing reads it last
            print(f"pylog-server: {listener.kind} listening on {listener.address}", flush=True)
        print(f"pylog-server: kafka listening on {server.address} "
              f"(data {config.data_dir})", flush=True)
        log.info("ready in %.0f ms", (time.monotonic() - started) * 1000,
                 extra={"data_dir": config.data_dir})
        await stop.wait()
        log.info("shutting down")
        for listener in interfaces:
            await listener.shutdown(config.shutdown_timeout_ms / 1000)
        await server.shutdown(config.shutdown_timeout_ms / 1000)
    finally:
        plog.close()            # flush, checkpoints, clean-shutdown marker (last)
    log.info("stopped cleanly")


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        print(f"pylog-server: {exc}", file=sys.stderr)
        return 16
    from .logs import setup_logging
    setup_logging(config.log_level, config.log_json)
    loop_kind = _install_uvloop()
    log.debug("event loop: %s", loop_kind)
    from pylog.errors import LogLockedError, PylogError
    try:
        asyncio.run(serve(config))
    except LogLockedError as exc:
        log.error("%s", exc)
        return 1
    except PylogError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
