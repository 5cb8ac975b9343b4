"""The gRPC contract tests of the event log, follow streams, errors and the handoff inbox
(WatchHandoffs), run unchanged over Connect (binary and JSON) and gRPC-Web: this folder's
conftest.py hands them stubs that speak those protocols to the server's HTTP port
(tests/web_support.py)."""

from __future__ import annotations

import pytest

from tests.api.test_errors import (
    test_bad_page_token_and_page_size,
    test_create_event_rejects_bad_input_naming_the_field,
    test_custom_event_round_trip,
    test_delete_agent_in_use_is_failed_precondition,
    test_idempotency_key,
    test_list_events_validation,
    test_missing_ids_are_invalid,
    test_nul_characters_are_invalid_on_every_backend,
    test_unknown_ids_are_not_found,
    test_update_mask_errors,
)
from tests.handoff.test_controls import (
    test_a_resume_position_from_the_future_is_refused,
    test_a_stale_epoch_is_aborted,
    test_an_operator_watching_makes_operators_available,
    test_inbox_snapshot_then_live_then_resume_without_gaps,
    test_invalid_transitions_are_refused_and_change_nothing,
    test_offer_decline_claim_transfer_and_resolve,
    test_presence_ends_with_the_watch_stream,
    test_request_records_the_handoff_and_tells_the_customer,
)
from tests.handoff.test_controls import (
    test_malformed_times_are_invalid_argument as malformed_times,
)
from tests.service.test_list_events import (
    test_cancelled_streams_unsubscribe,
    test_catch_up_is_batched,
    test_catch_up_to_live_switch_under_concurrent_writes,
    test_concurrent_appends_get_contiguous_distinct_offsets,
    test_correlation_id_defaults_to_the_event_id,
    test_deleting_a_session_ends_its_streams_with_not_found,
    test_filters_by_kind_and_source_in_catch_up_and_live,
    test_follow_waits_for_offsets_past_the_end,
    test_idle_follow_stream_gets_heartbeats_with_next_offset,
    test_mode_change_is_recorded_in_the_log,
)
from tests.support import Stubs

__all__ = [
    "test_a_resume_position_from_the_future_is_refused",
    "test_a_stale_epoch_is_aborted",
    "test_an_operator_watching_makes_operators_available",
    "test_bad_page_token_and_page_size",
    "test_cancelled_streams_unsubscribe",
    "test_catch_up_is_batched",
    "test_catch_up_to_live_switch_under_concurrent_writes",
    "test_concurrent_appends_get_contiguous_distinct_offsets",
    "test_correlation_id_defaults_to_the_event_id",
    "test_create_event_rejects_bad_input_naming_the_field",
    "test_custom_event_round_trip",
    "test_delete_agent_in_use_is_failed_precondition",
    "test_deleting_a_session_ends_its_streams_with_not_found",
    "test_filters_by_kind_and_source_in_catch_up_and_live",
    "test_follow_waits_for_offsets_past_the_end",
    "test_idempotency_key",
    "test_idle_follow_stream_gets_heartbeats_with_next_offset",
    "test_inbox_snapshot_then_live_then_resume_without_gaps",
    "test_invalid_transitions_are_refused_and_change_nothing",
    "test_list_events_validation",
    "test_missing_ids_are_invalid",
    "test_mode_change_is_recorded_in_the_log",
    "test_nul_characters_are_invalid_on_every_backend",
    "test_offer_decline_claim_transfer_and_resolve",
    "test_presence_ends_with_the_watch_stream",
    "test_request_records_the_handoff_and_tells_the_customer",
    "test_unknown_ids_are_not_found",
    "test_update_mask_errors",
]


async def test_malformed_times_are_invalid_argument(baton: Stubs, transport: str) -> None:
    if transport == "connect-json":
        pytest.skip("proto3 JSON cannot carry an out-of-range Timestamp: the client refuses it")
    await malformed_times(baton)
