"""The gRPC contract tests of the event log, follow streams and errors, run unchanged over
Connect (binary and JSON) and gRPC-Web: this folder's conftest.py hands them stubs that speak
those protocols to the server's HTTP port (tests/web_support.py)."""

from __future__ import annotations

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

__all__ = [
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
    "test_list_events_validation",
    "test_missing_ids_are_invalid",
    "test_mode_change_is_recorded_in_the_log",
    "test_nul_characters_are_invalid_on_every_backend",
    "test_unknown_ids_are_not_found",
    "test_update_mask_errors",
]
