"""Writes a state machine Decision inside the caller's write transaction: the session's control,
the handoff row, the events and the inbox entries, so the log, the handoff table and the inbox
never disagree."""

from __future__ import annotations

from dataclasses import replace

from baton_server.domain import INBOX_POSITION, Event
from baton_server.handoff.decision import KEEP, Decision, Keep
from baton_server.store import Repository, Transaction
from baton_server.store import handoffs as rows


def _stored(deadline: int | Keep | None) -> int | rows.Unchanged | None:
    return rows.UNCHANGED if deadline is KEEP else deadline


async def apply_decision(
    conn: Transaction, repository: Repository, decision: Decision
) -> list[Event]:
    """Returns the events appended (to publish after the commit)."""
    if decision.control is not None:
        control = decision.control
        await rows.set_control(
            conn, decision.session_id, control.epoch, control.mode, decision.now_us
        )
    handoff, deadlines = decision.handoff, decision.deadlines
    if handoff is not None and decision.is_new:
        await rows.insert_handoff(
            conn,
            handoff,
            claim_deadline_us=None if deadlines.claim_us is KEEP else deadlines.claim_us,
            inactivity_deadline_us=(
                None if deadlines.inactivity_us is KEEP else deadlines.inactivity_us
            ),
        )
    elif handoff is not None:
        await rows.save_handoff(
            conn,
            handoff,
            claim_deadline_us=_stored(deadlines.claim_us),
            inactivity_deadline_us=_stored(deadlines.inactivity_us),
        )
    # Each recording event carries its change's inbox position, so every replica's inbox
    # learns the new head from the event itself, without a store read.
    drafts = list(decision.events)
    positions: list[int] = []
    for entry in decision.inbox:
        position = await rows.next_position(conn)
        recording = drafts[entry.event_index]
        drafts[entry.event_index] = replace(
            recording, data={**recording.data, INBOX_POSITION: position}
        )
        positions.append(position)
    if not drafts:
        return []
    events = await repository.append_in(conn, decision.session_id, drafts, actor=decision.actor)
    for entry, position in zip(decision.inbox, positions, strict=True):
        await rows.insert_change(
            conn, position, entry.handoff, entry.change, events[entry.event_index]
        )
    return events
