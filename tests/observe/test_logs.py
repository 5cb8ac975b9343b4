"""Logs: `--log-format json` writes one JSON object per line with the call's context; the
access log names method, status, duration and the caller's key id, never secrets or text."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from baton.v1 import request_response_pb2 as rr
from baton_server.app import BatonApp
from baton_server.auth.principal import Role
from baton_server.config import Settings
from baton_server.observe.logs import ACCESS_LOGGER
from tests.auth_support import TOKEN_SECRET, Channels
from tests.support import ServerProcess, Stubs

SECRET_TEXT = "my card number is 4111 1111 1111 1111"


def json_lines(output: str) -> list[dict[str, object]]:
    """Every line parsed as a JSON object (fails on any line that is not)."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines
    parsed = []
    for line in lines:
        value = json.loads(line)
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


async def test_json_logs_parse_line_by_line_with_the_calls_context(tmp_path: Path) -> None:
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}",
        "--log-format",
        "json",
        "--access-log",
        "--no-engine",
    )
    server.start()
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            baton = Stubs.on(channel)
            session = await baton.new_session()
            await baton.say(session.id, SECRET_TEXT)
            with pytest.raises(grpc.aio.AioRpcError):
                await baton.sessions.GetSession(rr.GetSessionRequest(session_id="no-such-one"))
    finally:
        assert server.terminate() == 0
    assert server.process is not None and server.process.stdout is not None
    output = "".join(server.output) + server.process.stdout.read()
    records = json_lines(output)
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    assert SECRET_TEXT not in output
    access = [r for r in records if r["logger"] == ACCESS_LOGGER]
    (append,) = [r for r in access if r["rpc_method"] == "/baton.v1.EventService/CreateEvent"]
    assert append["code"] == "OK"
    assert append["session_id"] == session.id
    assert isinstance(append["duration_ms"], float | int) and append["duration_ms"] >= 0
    (missing,) = [r for r in access if r["rpc_method"] == "/baton.v1.SessionService/GetSession"]
    assert missing["code"] == "NOT_FOUND"
    assert missing["session_id"] == "no-such-one"
    assert any(r["message"].startswith("baton listening on") for r in records)  # type: ignore[union-attr]


async def test_the_access_log_names_the_key_never_its_secret(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = BatonApp(replace(settings, dev_mode=False, token_secret=TOKEN_SECRET, access_log=True))
    port = await app.start()
    channels = Channels(f"127.0.0.1:{port}", [])
    try:
        assert app.keys is not None
        key, secret = await app.keys.create(Role.INTEGRATION, "backend")
        backend = Stubs.on(channels.with_credential(secret))
        with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
            session = await backend.new_session()
            wrong = Stubs.on(channels.with_credential("bk_wrong_secret_000000000000"))
            with pytest.raises(grpc.aio.AioRpcError):
                await wrong.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
    finally:
        await channels.close()
        await app.stop(grace=1.0)
    lines = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    created = [r for r in lines if r.rpc_method == "/baton.v1.SessionService/CreateSession"]
    assert created and created[0].caller == key.id and created[0].code == "OK"
    (refused,) = [r for r in lines if r.rpc_method == "/baton.v1.SessionService/GetSession"]
    assert refused.code == "UNAUTHENTICATED" and refused.caller == ""
    for record in lines:
        assert secret not in record.getMessage()
        assert secret not in json.dumps(vars(record), default=str)


def test_bad_log_settings_are_refused_with_the_choices(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from baton_server.cli import app as cli

    database = f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}"
    runner = CliRunner()
    result = runner.invoke(cli, ["serve", "--database", database, "--log-format", "xml"])
    assert result.exit_code == 2
    assert "text, json" in result.output
    result = runner.invoke(cli, ["serve", "--database", database, "--log-level", "LOUD"])
    assert result.exit_code == 2
    assert "DEBUG, INFO" in result.output
