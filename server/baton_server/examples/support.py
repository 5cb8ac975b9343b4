"""The example customer-service agent: answers refund questions, hands off to a human on request.

baton serve --example-agent      (loads these tools and creates the agent once)
"""

from __future__ import annotations

from baton_server.domain import Agent
from baton_server.store import Repository
from baton_server.tools import ToolContext, ToolResult, tool

AGENT_NAME = "Baton Support (example)"


@tool(description="Hand the conversation to a human agent; the AI stops answering.")
async def initiate_human_handoff(context: ToolContext, reason: str) -> ToolResult:
    return ToolResult(
        data={"handoff": "requested", "reason": reason},
        control={"mode": "manual"},
    )


@tool(description="Look up the delivery status of an order by its number.")
async def check_order_status(context: ToolContext, order_id: str) -> ToolResult:
    digits = "".join(ch for ch in order_id if ch.isdigit())
    if not digits:
        return ToolResult(data={"found": False, "hint": "ask for the order number"})
    return ToolResult(data={"found": True, "order": digits[-8:], "status": "in transit"})


GUIDELINES = [
    (
        "The customer asks for a human",
        "Tell the customer you are connecting them with a colleague",
        ["initiate_human_handoff"],
    ),
    (
        "The customer asks about a refund",
        "Explain that refunds reach their account within 5 business days of the return",
        [],
    ),
    (
        "The customer asks where their order or parcel is",
        "Look up the order status and tell the customer",
        ["check_order_status"],
    ),
]

# `{{field}}`: filled from the turn's tool results (check_order_status's `order`, `status`); a
# response whose fields a turn cannot fill is not sent in that turn.
CANNED_RESPONSES = [
    "I'm connecting you with a colleague now. Please stay with me, they will join shortly.",
    "Refunds reach your account within 5 business days of your return arriving with us.",
    "I've checked order {{order}}: it is {{status}}.",
    "Could you send me your order number? You'll find it in your order confirmation email.",
]


async def install_example_agent(repository: Repository) -> Agent:
    """Creates the example agent, its guidelines and canned responses, once per database."""
    token = ""
    while True:
        page = await repository.list_agents(1000, token)
        for agent in page.items:
            if agent.name == AGENT_NAME:
                return agent
        token = page.next_page_token
        if not token:
            break
    agent = await repository.create_agent(
        AGENT_NAME, "A friendly support agent for an online shop. Keep answers short."
    )
    for condition, action, tools in GUIDELINES:
        await repository.create_guideline(agent.id, condition, action, tools, True)
    for text in CANNED_RESPONSES:
        await repository.create_canned_response(agent.id, text)
    return agent
