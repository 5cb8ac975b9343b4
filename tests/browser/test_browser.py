"""The customer chat widget and the operator console in a real browser (Chromium), against a
real `baton serve` with authentication on: a handoff from the customer's request to the
operator's reply and back to the AI, a dropped connection resumed without duplicates or gaps,
gRPC-Web, and a phone-sized screen. Every wait is on a condition in the page, with a deadline."""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlencode

import pytest

from baton.v1 import message_pb2 as pb
from tests.browser.conftest import IN_CI, OPERATOR_ID, PageErrors, Shots, WebServer
from tests.fake_openai import Answer, FakeOpenAI, matches

try:
    from playwright.sync_api import expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip("browser tests need Playwright (pip install playwright)", allow_module_level=True)

TIMEOUT_MS = 20_000
PHONE = {"width": 390, "height": 844}


def open_widget(
    browser: Any, server: WebServer, errors: PageErrors, name: str, **fragment: str
) -> tuple[Any, Any]:
    context = browser.new_context(
        viewport=fragment.pop("viewport", None) or {"width": 1100, "height": 800}
    )
    page = errors.watch(context.new_page(), name)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server.base_url}/widget/#{urlencode(fragment)}")
    expect(page.locator(".baton-widget")).to_have_attribute("data-link", "live")
    return context, page


def open_console(browser: Any, server: WebServer, errors: PageErrors, viewport: Any = None) -> Any:
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 860})
    page = errors.watch(context.new_page(), "operator")
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server.base_url}/console/")
    # Keyboard only: the key field has focus; Tab walks the form in order; Enter signs in.
    expect(page.locator("#login-key")).to_be_focused()
    page.keyboard.type(server.operator_key)
    page.keyboard.press("Tab")
    expect(page.locator("#login-id")).to_be_focused()
    page.keyboard.type(OPERATOR_ID)
    page.keyboard.press("Tab")
    page.keyboard.type("Olga")
    page.keyboard.press("Enter")
    expect(page.locator("#app")).to_have_attribute("data-inbox", "live")
    return page


def send(page: Any, text: str) -> None:
    """Types into the widget's composer and presses Enter (the keyboard path)."""
    box = page.get_by_label("Your message")
    box.click()
    box.fill(text)
    box.press("Enter")
    expect(page.locator(".bw-customer .bw-text", has_text=text)).to_have_count(1)


def shown_offsets(page: Any) -> list[int]:
    return [
        int(o)
        for o in page.locator(".bw-log li[data-offset]").evaluate_all(
            "els => els.map(e => e.dataset.offset)"
        )
    ]


def test_handoff_from_request_to_operator_and_back_to_the_ai(
    browser: Any, web_server: WebServer, page_errors: PageErrors, shots: Shots
) -> None:
    agent_id = web_server.example_agent_id()
    _, token = web_server.new_customer("Cy")
    operator = open_console(browser, web_server, page_errors)
    expect(operator.locator('[data-list="pending"] .bc-empty')).to_be_visible()
    _, customer = open_widget(
        browser, web_server, page_errors, "customer", token=token, agent=agent_id
    )
    shots.take("started", customer=customer, operator=operator)

    # The customer asks for a human: the AI hands off, the customer is queued.
    send(customer, "Can I talk to a human please?")
    widget = customer.locator(".baton-widget")
    expect(
        customer.locator(".bw-system", has_text="connecting you with a member of our team")
    ).to_have_count(1)
    expect(customer.locator(".bw-status")).to_have_attribute("data-phase", "queued")
    expect(customer.locator(".bw-queue")).to_contain_text("number 1 in the queue")
    session_id = widget.get_attribute("data-session")
    assert session_id
    # Operators are watching: no "nobody is available" message.
    expect(customer.locator(".bw-system", has_text="No one from our team")).to_have_count(0)

    # The operator sees it arrive in the inbox, opens it (summary, history) and claims it.
    entry = operator.locator(f'[data-list="pending"] [data-session-id="{session_id}"]')
    expect(entry).to_contain_text("number 1 in the queue")
    shots.take("queued", customer=customer, operator=operator)
    entry.click()
    pane = operator.locator(".bc-session")
    expect(pane.locator(".bc-summary")).to_contain_text("human")
    expect(
        pane.locator(".bc-customer .bc-text", has_text="Can I talk to a human please?")
    ).to_be_visible()
    operator.get_by_role("button", name="Claim").click()
    expect(
        operator.locator(f'[data-list="claimed"] [data-session-id="{session_id}"]')
    ).to_be_visible()
    reply = operator.get_by_label("Reply as Olga")
    expect(reply).to_be_focused()
    reply.fill("Hi, this is Olga. How can I help?")
    reply.press("Enter")
    expect(pane.locator(".bc-human .bc-text", has_text="Hi, this is Olga")).to_have_count(1)

    # The customer sees Olga join and her reply.
    expect(
        customer.locator(".bw-system", has_text="Olga has joined the conversation.")
    ).to_have_count(1)
    expect(
        customer.locator(".bw-human", has_text="Hi, this is Olga. How can I help?")
    ).to_have_count(1)
    expect(customer.locator(".bw-human .bw-author")).to_have_text("Olga")
    expect(customer.locator(".bw-status")).to_have_attribute("data-phase", "human")
    expect(customer.locator(".bw-queue")).to_be_hidden()
    shots.take("operator-replied", customer=customer, operator=operator)

    # The operator hands the session back to the AI.
    operator.get_by_label("Note (context for the AI when it takes back)").fill(
        "customer wanted a person"
    )
    operator.get_by_role("button", name="Back to the AI").click()
    expect(pane).to_have_attribute("data-state", "ended")
    # The history follows live, scrolled to its newest entry.
    back = "You're back with our virtual assistant."
    expect(pane.locator(".bc-system", has_text=back)).to_be_in_viewport()
    expect(operator.locator(f'[data-session-id="{session_id}"]')).to_have_count(0)
    expect(
        customer.locator(".bw-system", has_text="You're back with our virtual assistant.")
    ).to_have_count(1)
    expect(customer.locator(".bw-status")).to_have_attribute("data-phase", "ai")

    # The AI answers the customer's next message.
    send(customer, "How does a refund work?")
    expect(
        customer.locator(".bw-ai", has_text="Refunds reach your account within 5 business days")
    ).to_have_count(1)
    expect(customer.locator(".bw-activity")).to_have_attribute("data-activity", "idle")
    shots.take("back-to-ai", customer=customer, operator=operator)

    # Every entry once, in log order, and exactly what the customer's view of the log holds.
    offsets = shown_offsets(customer)
    assert offsets == sorted(set(offsets))
    logged = [
        e.offset for e in web_server.events(session_id, token) if e.kind == pb.EVENT_KIND_MESSAGE
    ]
    assert offsets == logged

    # The stats page draws the handoff.
    operator.get_by_role("button", name="Stats").click()
    handoffs = operator.locator(".bc-figure").filter(
        has=operator.get_by_text("Handoffs", exact=True)
    )
    expect(handoffs.locator("dd")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(operator.locator('svg[role="img"]').first).to_be_visible()
    expect(operator.locator(".bc-chart", has_text="Reasons").locator("svg")).to_have_attribute(
        "aria-label", "Reasons: can i talk to a human please 1"
    )
    shots.take("stats", operator=operator)


def test_the_operator_transfers_a_conversation(
    browser: Any, web_server: WebServer, page_errors: PageErrors, shots: Shots
) -> None:
    customer_id, _ = web_server.new_customer("Tia")
    handoff = web_server.handed_off_session(customer_id, "billing question")
    operator = open_console(browser, web_server, page_errors)
    operator.locator(f'[data-handoff-id="{handoff.id}"]').click()
    operator.get_by_role("button", name="Claim").click()
    operator.get_by_text("Transfer to another operator").click()
    operator.get_by_label("Operator id").fill("max")
    operator.get_by_label("Display name").fill("Max")
    operator.get_by_role("button", name="Transfer", exact=True).click()
    expect(operator.locator(".bc-actions")).to_have_text("Held by Max.")
    claimed = operator.locator(f'[data-list="claimed"] [data-handoff-id="{handoff.id}"]')
    expect(claimed).to_contain_text("held by Max")
    expect(operator.locator(".bc-session .bc-note", has_text="Transferred to Max")).to_be_visible()
    assert web_server.handoff(handoff.id).operator.id == "max"
    shots.take("transferred", operator=operator)


def test_a_dropped_connection_resumes_without_duplicates_or_gaps(
    browser: Any, web_server: WebServer, page_errors: PageErrors, shots: Shots
) -> None:
    agent_id = web_server.example_agent_id()
    _, token = web_server.new_customer("Dee")
    context, customer = open_widget(
        browser, web_server, page_errors, "customer", token=token, agent=agent_id
    )
    streams: list[str] = []
    customer.on("request", lambda r: "ListEvents" in r.url and streams.append(r.url))
    send(customer, "How does a refund work?")
    expect(customer.locator(".bw-ai", has_text="Refunds reach your account")).to_have_count(1)
    session_id = customer.locator(".baton-widget").get_attribute("data-session")
    assert session_id
    before = len(streams)

    # The network goes away; meanwhile the conversation goes on (two turns of the AI).
    page_errors.allow(r"ERR_INTERNET_DISCONNECTED|Failed to fetch|ERR_NETWORK_CHANGED")
    context.set_offline(True)
    expect(customer.locator(".baton-widget")).to_have_attribute("data-link", "offline")
    shots.take("offline", customer=customer)
    web_server.say(session_id, pb.EVENT_SOURCE_CUSTOMER, "Where is my parcel? Order 48213")
    last = web_server.say(session_id, pb.EVENT_SOURCE_CUSTOMER, "And how does a refund work?")
    web_server.wait_for_event(
        session_id,
        lambda e: (
            e.kind == pb.EVENT_KIND_STATUS
            and e.status.status == pb.STATUS_READY
            and e.correlation_id == last.correlation_id
        ),
    )
    expect(customer.locator(".bw-customer", has_text="And how does a refund work?")).to_have_count(
        0
    )

    # Back online: the widget resumes from its last offset.
    context.set_offline(False)
    expect(customer.locator(".baton-widget")).to_have_attribute("data-link", "live")
    expect(customer.locator(".bw-customer", has_text="And how does a refund work?")).to_have_count(
        1
    )
    expect(customer.locator(".bw-ai", has_text="Refunds reach your account")).to_have_count(2)
    assert len(streams) > before, "the widget opened a new stream"
    logged = [
        e.offset for e in web_server.events(session_id, token) if e.kind == pb.EVENT_KIND_MESSAGE
    ]
    expect(customer.locator(".bw-log li[data-offset]")).to_have_count(len(logged))
    assert shown_offsets(customer) == logged, "no duplicate, no gap"
    shots.take("resumed", customer=customer)

    # A reload resumes the same session from the URL fragment, history included.
    customer.reload()
    expect(customer.locator(".baton-widget")).to_have_attribute("data-link", "live")
    expect(customer.locator(".bw-log li[data-offset]")).to_have_count(len(logged))
    assert shown_offsets(customer) == logged


def test_the_widget_speaks_grpc_web_too(
    browser: Any, web_server: WebServer, page_errors: PageErrors, shots: Shots
) -> None:
    agent_id = web_server.example_agent_id()
    _, token = web_server.new_customer("Gus")
    _, customer = open_widget(
        browser,
        web_server,
        page_errors,
        "customer",
        token=token,
        agent=agent_id,
        protocol="grpc-web",
    )
    grpc_web: list[str] = []
    customer.on(
        "request",
        lambda r: (
            (r.headers.get("content-type") or "").startswith("application/grpc-web")
            and grpc_web.append(r.url)
        ),
    )
    send(customer, "How does a refund work?")
    expect(customer.locator(".bw-ai", has_text="Refunds reach your account")).to_have_count(1)
    assert grpc_web, "requests went out as gRPC-Web"
    shots.take("grpc-web", customer=customer)


def test_phone_sized_screen(
    browser: Any, web_server: WebServer, page_errors: PageErrors, shots: Shots
) -> None:
    agent_id = web_server.example_agent_id()
    _, token = web_server.new_customer("Pia")
    operator = open_console(browser, web_server, page_errors, viewport=PHONE)
    _, customer = open_widget(
        browser, web_server, page_errors, "customer", token=token, agent=agent_id, viewport=PHONE
    )
    send(customer, "Can I talk to a human please?")
    expect(customer.locator(".bw-queue")).to_be_visible()
    for page in (customer, operator):
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"no sideways scrolling on a phone (page is {width}px wide)"
    send_button = customer.get_by_role("button", name="Send")
    expect(send_button).to_be_in_viewport()
    box = send_button.bounding_box()
    assert box and box["height"] >= 44, "a finger-sized Send button"
    shots.take("phone-customer", customer=customer)

    # The console shows one pane at a time: the list, then the conversation, then back.
    session_id = customer.locator(".baton-widget").get_attribute("data-session")
    entry = operator.locator(f'[data-session-id="{session_id}"]')
    expect(entry).to_be_visible()
    shots.take("phone-inbox", operator=operator)
    entry.click()
    expect(operator.locator(".bc-inbox")).to_be_hidden()
    expect(operator.get_by_role("button", name="Claim")).to_be_in_viewport()
    shots.take("phone-conversation", operator=operator)
    operator.get_by_role("button", name="← Inbox").click()
    expect(operator.locator(".bc-inbox")).to_be_visible()
    expect(entry).to_be_focused()

    # Claimed and resolved from the phone (the session stays with humans).
    entry.press("Enter")
    operator.get_by_role("button", name="Claim").click()
    operator.get_by_role("button", name="Resolved").click()
    expect(operator.locator(".bc-session")).to_have_attribute("data-state", "ended")
    expect(customer.locator(".bw-queue")).to_be_hidden()
    shots.take("phone-resolved", customer=customer, operator=operator)


def test_the_ai_reply_streams_into_the_widget(
    browser: Any,
    openai_web_server: tuple[WebServer, FakeOpenAI],
    page_errors: PageErrors,
    shots: Shots,
) -> None:
    server, fake = openai_web_server
    halfway = threading.Event()
    fake.script(
        matches(),  # no guideline applies
        Answer(stream=["Hel", "lo ", "there, ", "how can I help?"], pause_after=2, resume=halfway),
    )
    _, token = server.new_customer("Sam")
    _, customer = open_widget(
        browser, server, page_errors, "customer", token=token, agent=server.example_agent_id()
    )
    try:
        send(customer, "Hi!")
        # Half of the reply is written: the widget shows it as it comes.
        draft = customer.locator(".bw-draft")
        expect(draft).to_contain_text("Hello")
        expect(customer.locator(".bw-activity")).to_have_text("Virtual assistant is typing…")
        shots.take("streaming", customer=customer)
    finally:
        halfway.set()
    stored = customer.locator("li[data-offset].bw-ai")
    expect(stored).to_have_text(re.compile("Hello there, how can I help?"))
    expect(draft).to_be_hidden()
    expect(customer.locator(".bw-activity")).to_have_attribute("data-activity", "idle")
    shots.take("streamed", customer=customer)
