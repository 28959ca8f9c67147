"""The Kafka wire protocol front-end: framing, dispatch, one module per API family."""
import sys as _sys


def _import_kio_without_hypothesis() -> None:
    """Import kio's base types with hypothesis hidden.

    When hypothesis is importable (any environment with pylog's test extra), kio
    imports it and registers a strategy for every protocol type: about a second of
    pylog-server's start-up before the first request can be answered (DESIGN §7 asks
    for < 0.5 s).  A broker has no use for the strategies, so the server hides
    hypothesis while kio loads.  A process that has already imported hypothesis
    (a test run) keeps kio's normal behaviour.
    """
    if "hypothesis" in _sys.modules or "kio.static.primitive" in _sys.modules:
        return
    _sys.modules["hypothesis"] = None        # `import hypothesis...` → ImportError
    try:
        import kio.static.primitive  # noqa: F401
    finally:
        del _sys.modules["hypothesis"]


_import_kio_without_hypothesis()
