"""`baton serve` stops cleanly on SIGTERM however early it arrives after "listening on"."""

from __future__ import annotations

from pathlib import Path

from tests.support import ServerProcess


def test_a_sigterm_right_after_listening_is_a_clean_stop(tmp_path: Path) -> None:
    for attempt in range(3):  # the window was milliseconds wide: try it more than once
        server = ServerProcess(f"sqlite+aiosqlite:///{tmp_path / f'stop{attempt}.db'}")
        server.start()
        try:
            code = server.terminate(timeout=30)
            output = (
                server.process.stdout.read() if server.process and server.process.stdout else ""
            )
            assert code == 0, f"exit code {code} (attempt {attempt}):\n{output}"
        finally:
            server.kill()
