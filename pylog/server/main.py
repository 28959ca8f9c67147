"""``pylog-server``: bind the listeners, open the data directory, serve, shut down cleanly.

Start-up order: every setting is checked (settings.parse_config; a bad one exits 2
before anything happens), the effective configuration is logged (one INFO block),
then every listener's port is bound, and only then is the data directory created or
opened -- a port in use (exit 1) leaves no new data directory behind.  Then the
broker loads, the listeners start serving, and one line naming every listener goes
to stdout (``pylog-server: kafka listening on 127.0.0.1:9092, text on
127.0.0.1:3000, http on 127.0.0.1:8081 (data ./data)``) -- the pytest plugin reads
it to learn ephemeral ports; /healthz turns from 503 ``starting`` to 200 ``ready``.
SIGTERM and SIGINT run the shutdown steps in ``app.Server`` and then close the Log
(flush, checkpoints, clean-shutdown marker); exit status 0.  A second instance on
the same data directory exits 1 with the holder's pid.  Exit codes: 0 clean stop,
1 cannot start (or failed), 2 bad configuration or usage.
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

from .settings import ConfigError, ServerConfig, effective, parse_config

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

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
    from .kafka.context import GROUP_SETTINGS, SHARE_SETTINGS, TXN_SETTINGS, BrokerSettings
    return BrokerSettings(cluster_id=_cluster_id(config.data_dir),
                          advertised_host=config.advertised_host,
                          advertised_port=config.advertised_port,
                          auto_create_topics=config.auto_create_topics,
                          num_partitions=config.num_partitions,
                          max_request_bytes=config.max_request_bytes,
                          group_initial_rebalance_delay_ms=(
                              config.group_initial_rebalance_delay_ms),
                          **{k: getattr(config, k) for k in GROUP_SETTINGS},
                          **{k: getattr(config, k) for k in SHARE_SETTINGS},
                          **{k: getattr(config, k) for k in TXN_SETTINGS})


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


class StartupError(Exception):
    """The server cannot start (exit 1); the message is for the operator."""


def _bind_listeners(config: ServerConfig) -> dict:
    """{kind: listening socket or None} for text and http, and "kafka": [(ListenerSpec,
    socket)], bound before the data directory is touched.  The Kafka ports and
    explicitly given ports must bind; the default text/HTTP ports (3000, 8081) are
    skipped with a warning when taken."""
    from .listener import bind_socket
    host = config.kafka_address[0]
    socks: dict = {"kafka": []}
    try:
        for spec in config.kafka_listeners:
            try:
                socks["kafka"].append((spec, bind_socket(spec.host, spec.port)))
            except OSError as exc:
                raise StartupError(f"kafka listener {spec.host}:{spec.port} "
                                   f"({spec.protocol}): {exc.strerror or exc} "
                                   f"(set --kafka-listener)") from None
        for kind, wanted, default in (("text", config.text_port, 3000),
                                      ("http", config.http_port, 8081)):
            if wanted is not None and wanted < 0:
                socks[kind] = None
                continue
            try:
                socks[kind] = bind_socket(host, default if wanted is None else wanted)
            except OSError as exc:
                where = f"{host}:{default if wanted is None else wanted}"
                if wanted is not None:
                    raise StartupError(f"{kind} listener {where}: "
                                       f"{exc.strerror or exc} (set --{kind}-port)") from None
                log.warning("%s listener not started: %s: %s (set --%s-port)", kind, where,
                            exc.strerror or exc, kind)
                socks[kind] = None
    except BaseException:
        _close_socks(socks)
        raise
    return socks


def _close_socks(socks: dict) -> None:
    for kind, sock in socks.items():
        if kind == "kafka":
            for _spec, s in sock:
                s.close()
        elif sock is not None:
            sock.close()


async def _start_interfaces(server, config: ServerConfig, socks: dict) -> list:
    """The text and HTTP listeners over the Kafka server's broker, on the sockets
    ``_bind_listeners`` bound (each is handed over, so ``socks`` loses it)."""
    if socks.get("text") is None and socks.get("http") is None:
        return []
    # aiohttp takes about half a second to import: do it in a worker thread so the Kafka
    # listener, already open, answers requests meanwhile.
    loop = asyncio.get_running_loop()
    HttpServer, CommittedOffsets, TextServer = await loop.run_in_executor(
        None, _import_interfaces)
    host = config.kafka_address[0]
    offsets = CommittedOffsets(server.broker)
    extra = {"cap": server.cap, "request_timeout_s": config.request_timeout_ms / 1000,
             "idle_s": config.idle_ms / 1000}
    started = []
    for kind, cls in (("text", TextServer), ("http", HttpServer)):
        sock = socks.pop(kind, None)
        if sock is None:
            continue
        more = {"security_protocol": (config.text_security if kind == "text"
                                      else config.http_security).upper()}
        listener = cls(server.broker, host, sock.getsockname()[1], offsets=offsets, **extra,
                       **more)
        try:
            await listener.start(sock)
        except BaseException:
            sock.close()
            raise
        started.append(listener)
    return started


def _log_effective(config: ServerConfig) -> None:
    width = max(len(name) for name, _ in effective(config))
    from .settings import default_text
    lines = [f"  {name:<{width}} = "
             f"{value if value is not None else '(' + default_text(name) + ')'}"
             for name, value in effective(config)]
    log.info("pylog-server %s, effective configuration:\n%s", _version(), "\n".join(lines))


def _version() -> str:
    from .settings import version
    return version()


def _listening_line(server, interfaces, data_dir: str) -> str:
    more = "".join(f", kafka {spec.protocol} on {address}"
                   for spec, address in server.addresses[1:])
    others = "".join(f", {lst.kind} on {lst.address}" for lst in interfaces)
    first_spec, first = server.addresses[0]
    proto = "" if first_spec.protocol == "PLAINTEXT" else f" ({first_spec.protocol})"
    return (f"pylog-server: kafka listening on {first}{proto}{more}{others} "
            f"(data {data_dir})")


def _security(config: ServerConfig):
    """The Security the listeners share (users file, SASL mechanisms, TLS)."""
    from pylog.security.sasl import Security
    from pylog.security.tls import TlsConfig
    tls = None
    if any(spec.tls for spec in config.kafka_listeners) or \
            config.text_security.upper() in ("SSL", "SASL_SSL") or \
            config.http_security.upper() in ("SSL", "SASL_SSL"):
        try:
            tls = TlsConfig(config.ssl_certfile, config.ssl_keyfile, config.ssl_cafile,
                            config.ssl_client_auth.lower())
        except ValueError as exc:
            raise StartupError(str(exc)) from None
    mechs = [m.strip().upper() for m in config.sasl_enabled_mechanisms.split(",") if m.strip()]
    return Security(config.data_dir, mechanisms=mechs, tls=tls,
                    reauth_ms=config.connections_max_reauth_ms,
                    failed_auth_delay_ms=config.connection_failed_authentication_delay_ms)


async def serve(config: ServerConfig, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT), then shut down in order."""
    import pylog
    from .app import Server

    started = time.monotonic()
    socks = _bind_listeners(config)     # before the data directory: see the module doc
    plog = None
    try:
        plog = pylog.open(config.data_dir,
                          retention_check_interval_ms=config.retention_check_interval_ms,
                          log_cleaner_enable=config.log_cleaner_enable,
                          log_cleaner_backoff_ms=config.log_cleaner_backoff_ms)
        _report_recovery(plog)
        host, port = config.kafka_address
        server = Server(plog, host, port, _settings(config), idle_ms=config.idle_ms,
                        request_timeout_ms=config.request_timeout_ms,
                        max_connections=config.max_connections,
                        security=_security(config),
                        max_connections_per_ip=config.max_connections_per_ip)
        if config.authorizer.upper() == "ACL":
            from pylog.security.acls import Authorizer
            server.broker.authorizer = Authorizer(
                config.data_dir, [p.strip() for p in config.super_users.split(";")
                                  if p.strip()], config.allow_everyone_if_no_acl_found)
        await server.start(socks.pop("kafka"))
        interfaces = await _start_interfaces(server, config, socks)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig, action in ((signal.SIGTERM, stop.set), (signal.SIGINT, stop.set),
                            (signal.SIGHUP, server.reload_tls)):
            try:
                loop.add_signal_handler(sig, action)
            except (NotImplementedError, RuntimeError):     # not the main thread
                pass
        print(_listening_line(server, interfaces, config.data_dir), flush=True)
        for listener in interfaces:
            listener.ready = True       # /healthz: ready (once the groups are loaded)
        log.info("ready in %.0f ms", (time.monotonic() - started) * 1000,
                 extra={"data_dir": config.data_dir})
        await stop.wait()
        log.info("shutting down")
        for listener in interfaces:
            await listener.shutdown(config.shutdown_timeout_ms / 1000)
        await server.shutdown(config.shutdown_timeout_ms / 1000)
    finally:
        _close_socks(socks)
        if plog is not None:
            plog.close()        # flush, checkpoints, clean-shutdown marker (last)
    log.info("stopped cleanly")


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        print(f"pylog-server: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from .logs import setup_logging
    setup_logging(config.log_level, config.log_json)
    loop_kind = _install_uvloop()
    _log_effective(config)
    log.debug("event loop: %s", loop_kind)
    from pylog.errors import LogLockedError, PylogError
    try:
        asyncio.run(serve(config))
    except LogLockedError as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    except (StartupError, PylogError) as exc:
        log.error("cannot start: %s", exc)
        return EXIT_FAILED
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        log.error("cannot start: %s%s", where, exc.strerror or exc)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
