"""Real-browser tests: Debian's Chromium driven by Playwright, against a real `baton serve`
(authentication on, the Connect/gRPC-Web port, the example agent, the offline engine).

Skipped, with the reason, only where Chromium or Playwright is missing on a developer's machine;
under CI (CI=true) a missing browser fails the run instead (.ci/run installs it).

Screenshots of every step go to tests/browser/screenshots/<test>/ (git-ignored), or to
$BATON_WEB_SCREENSHOTS; the folder is printed at the end of the run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from tests.fake_openai import FakeOpenAI
from tests.support import ROOT

SCREENSHOTS = Path(
    os.environ.get("BATON_WEB_SCREENSHOTS", ROOT / "tests" / "browser" / "screenshots")
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXAMPLE_AGENT = "Baton Support (example)"
OPERATOR_ID = "olga"


def _browser_missing() -> str:
    if CHROMIUM is None:
        return "Chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class WebServer:
    """`baton serve` with the browser transport, its keys and a gRPC channel for setup."""

    folder: Path
    grpc_port: int
    http_port: int
    integration_key: str
    operator_key: str
    process: subprocess.Popen[str]
    log: Path
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def metadata(self, key: str | None = None) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {key or self.integration_key}")]

    def example_agent_id(self) -> str:
        agents = svc.AgentServiceStub(self.channel).ListAgents(
            rr.ListAgentsRequest(page_size=1000), metadata=self.metadata()
        )
        return next(agent.id for agent in agents.agents if agent.name == EXAMPLE_AGENT)

    def new_customer(self, name: str) -> tuple[str, str]:
        """A new customer and a customer token for them."""
        customer = svc.CustomerServiceStub(self.channel).CreateCustomer(
            rr.CreateCustomerRequest(customer=pb.Customer(name=name)), metadata=self.metadata()
        )
        token = svc.AuthServiceStub(self.channel).IssueCustomerToken(
            rr.IssueCustomerTokenRequest(customer_id=customer.customer.id),
            metadata=self.metadata(),
        )
        return customer.customer.id, token.token

    def handed_off_session(self, customer_id: str, reason: str) -> pb.Handoff:
        """A session of the example agent handed to humans by the integration."""
        session = svc.SessionServiceStub(self.channel).CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(agent_id=self.example_agent_id(), customer_id=customer_id)
            ),
            metadata=self.metadata(),
        )
        handoffs = svc.HandoffServiceStub(self.channel)
        return handoffs.RequestHandoff(
            rr.RequestHandoffRequest(session_id=session.session.id, reason=reason),
            metadata=self.metadata(),
        ).handoff

    def handoff(self, handoff_id: str) -> pb.Handoff:
        return (
            svc.HandoffServiceStub(self.channel)
            .GetHandoff(rr.GetHandoffRequest(handoff_id=handoff_id), metadata=self.metadata())
            .handoff
        )

    def events(self, session_id: str, key: str | None = None) -> list[pb.Event]:
        """The session's log as `key` sees it (a customer token gets the customer view)."""
        stream = svc.EventServiceStub(self.channel).ListEvents(
            rr.ListEventsRequest(session_id=session_id), metadata=self.metadata(key)
        )
        return [event for response in stream for event in response.events]

    def wait_for_event(self, session_id: str, predicate: Any, timeout: float = 20.0) -> pb.Event:
        """Follows the log until an event matches (a real condition, with a deadline)."""
        stream = svc.EventServiceStub(self.channel).ListEvents(
            rr.ListEventsRequest(session_id=session_id, follow=True),
            metadata=self.metadata(),
            timeout=timeout,
        )
        try:
            for response in stream:
                for event in response.events:
                    if predicate(event):
                        return event
        finally:
            stream.cancel()
        raise AssertionError(f"no matching event on {session_id} within {timeout}s")

    def say(self, session_id: str, source: int, text: str, **message: Any) -> pb.Event:
        response = svc.EventServiceStub(self.channel).CreateEvent(
            rr.CreateEventRequest(
                session_id=session_id,
                kind=pb.EVENT_KIND_MESSAGE,
                source=source,
                message=pb.MessageData(text=text, **message),
            ),
            metadata=self.metadata(),
        )
        return response.event


def _baton(*args: str) -> list[str]:
    return [sys.executable, "-m", "baton_server", *args]


def _key(database: str, role: str, *extra: str) -> str:
    done = subprocess.run(
        _baton(
            "keys",
            "create",
            "--role",
            role,
            "--name",
            f"web {role}",
            *extra,
            "--database",
            database,
        ),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def _serving(folder: Path, *nlp: str, env: dict[str, str] | None = None) -> Iterator[WebServer]:
    """`baton serve` on two free loopback ports (gRPC and HTTP), auth on, the example agent."""
    database = f"sqlite+aiosqlite:///{folder / 'baton.db'}"
    subprocess.run(
        _baton("migrate", "--database", database), check=True, cwd=ROOT, capture_output=True
    )
    integration = _key(database, "integration")
    operator = _key(database, "operator", "--operator-id", OPERATOR_ID)
    grpc_port, http_port = _free_port(), _free_port()
    log = folder / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            _baton(
                "serve",
                "--port",
                str(grpc_port),
                "--http-port",
                str(http_port),
                "--database",
                database,
                "--example-agent",
                *nlp,
                "--token-secret",
                "web-tests-" + "s" * 40,
                "--sqlite-synchronous",
                "NORMAL",
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1") | (env or {}),
        )
    server = WebServer(folder, grpc_port, http_port, integration, operator, process, log)
    try:
        _wait_until_serving(server)
        yield server
    finally:
        server.channel.close()
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """The offline engine with the lexical matcher: deterministic answers, fast turns."""
    with _serving(
        tmp_path_factory.mktemp("web"), "--nlp", "offline", "--offline-matcher", "lexical"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def openai_web_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[WebServer, FakeOpenAI]]:
    """The `openai` provider against a scripted OpenAI-compatible server: streamed replies."""
    fake = FakeOpenAI().start()
    try:
        with _serving(
            tmp_path_factory.mktemp("web-openai"),
            "--nlp",
            "openai",
            env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url},
        ) as server:
            yield server, fake
    finally:
        fake.stop()


def _wait_until_serving(server: WebServer, timeout: float = 60.0) -> None:
    """Both ports answer: the widget page over HTTP and ListAgents over gRPC."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{server.base_url}/widget/", timeout=2) as page:
                assert page.status == 200
            grpc.channel_ready_future(server.channel).result(timeout=2)
            server.example_agent_id()
            return
        except Exception as error:  # not up yet: keep polling until the deadline
            last = error
            time.sleep(0.1)
    raise AssertionError(f"baton serve did not come up ({last}):\n{server.log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing and IN_CI:
        # CI must run these: a missing browser is a broken CI setup, not a reason to skip.
        pytest.fail(f"CI=true but {missing}: .ci/run installs it")
    if missing:
        pytest.skip(f"no browser here: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


class PageErrors:
    """Console errors and uncaught page errors of every page a test opens."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def watch(self, page: Any, name: str) -> Any:
        page.on("console", lambda m: m.type == "error" and self._add(f"{name} console: {m.text}"))
        page.on("pageerror", lambda e: self._add(f"{name} page error: {e}"))
        return page

    def allow(self, pattern: str) -> None:
        """Tolerate a console error the test causes on purpose (e.g. while offline)."""
        self.allowed.append(re.compile(pattern))

    def _add(self, text: str) -> None:
        if not any(pattern.search(text) for pattern in self.allowed):
            self.errors.append(text)


@pytest.fixture
def page_errors() -> Iterator[PageErrors]:
    errors = PageErrors()
    yield errors
    assert errors.errors == [], "console or page errors:\n" + "\n".join(errors.errors)


class Shots:
    """Numbered screenshots of a test's pages: <folder>/<nn>-<step>-<page>.png."""

    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder = folder
        self.step = 0

    def take(self, step: str, **pages: Any) -> None:
        self.step += 1
        for name, page in pages.items():
            page.screenshot(
                path=str(self.folder / f"{self.step:02d}-{step}-{name}.png"), full_page=True
            )


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(SCREENSHOTS / request.node.name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENSHOTS.exists() and any(SCREENSHOTS.iterdir()):
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")
