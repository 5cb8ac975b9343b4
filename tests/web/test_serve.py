"""`baton serve --http-port`: a real process serves Connect next to gRPC and stops cleanly."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

from tests.support import ServerProcess


def test_serve_answers_curl_on_the_http_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}", "--http-port", "0", "--no-engine"
    )
    server.start()
    try:
        found = re.search(r"Connect and gRPC-Web at http://[^:]+:(\d+)", "".join(server.output))
        assert found, "".join(server.output)
        connection = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=10)
        connection.request(
            "POST",
            "/baton.v1.AgentService/ListAgents",
            body=b"{}",
            headers={"content-type": "application/json"},
        )
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {})
        connection.close()
        assert server.terminate() == 0
    finally:
        server.kill()
