"""The handoff store, by name: what the handoff room, the append path and the inbox use of it.

Its parts live by concern: `handoff_rows` (rows read and written inside a write transaction),
`handoff_changes` (the inbox's change log), `operator_presence` (who watches the inbox) and
`handoff_reader` (reads on pooled connections).
"""

from baton_server.store.handoff_changes import (
    forget_session,
    insert_change,
    next_position,
    record_change,
    record_noticed_events,
)
from baton_server.store.handoff_reader import DueDeadlines, HandoffReader
from baton_server.store.handoff_rows import (
    UNCHANGED,
    HeldHandoff,
    StoredDeadlines,
    Unchanged,
    agent_policy,
    claimed_handoffs,
    deadlines_of,
    insert_handoff,
    latest_handoff_of,
    load_handoff,
    lock_session,
    note_human_replies,
    open_handoff_of,
    pending_queue,
    reason_key,
    recent_claim_waits_us,
    save_handoff,
    set_control,
)
from baton_server.store.operator_presence import (
    operators_present_in,
    remove_presence,
    upsert_presence,
)

__all__ = [
    "UNCHANGED",
    "DueDeadlines",
    "HandoffReader",
    "HeldHandoff",
    "StoredDeadlines",
    "Unchanged",
    "agent_policy",
    "claimed_handoffs",
    "deadlines_of",
    "forget_session",
    "insert_change",
    "insert_handoff",
    "latest_handoff_of",
    "load_handoff",
    "lock_session",
    "next_position",
    "note_human_replies",
    "open_handoff_of",
    "operators_present_in",
    "pending_queue",
    "reason_key",
    "recent_claim_waits_us",
    "record_change",
    "record_noticed_events",
    "remove_presence",
    "save_handoff",
    "set_control",
    "upsert_presence",
]
