"""The /metrics endpoint: prometheus-client's own HTTP server, on a thread of its own."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from baton_server.observe.metrics import BatonMetrics


class MetricsEndpoint:
    """Serves `metrics` at http://host:port/metrics until `close()`."""

    def __init__(self, metrics: BatonMetrics, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, host, registry=metrics.registry)
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
