"""pylog's HTTP listener (DESIGN §10): metrics, the Confluent REST Proxy v2 API, simple
queue routes, live event streams and the dashboard.  See server.py."""
from .metrics_routes import collect, render_prometheus
from .server import HttpServer

__all__ = ["HttpServer", "collect", "render_prometheus"]
