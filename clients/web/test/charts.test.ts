// Chart data from GetHandoffStats and the reconnect backoff.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { HandoffStatsSchema } from "../src/gen/baton/v1/message_pb.js";
import { backoffDelay } from "../src/shared/backoff.js";
import { bars, formatDuration, statsCharts } from "../src/shared/charts.js";

test("bars are scaled to the longest one", () => {
  const result = bars([["a", 2], ["b", 4], ["c", 0]]);
  assert.deepEqual(result.map((b) => b.share), [0.5, 1, 0]);
  assert.deepEqual(bars([["x", 0]]).map((b) => b.share), [0]);
});

test("stats charts: reasons most frequent first with the tail summed; p50/p90 only when measured", () => {
  const stats = create(HandoffStatsSchema, {
    sessions: 10n,
    sessionsWithHandoff: 3n,
    handoffRate: 0.3,
    handoffs: 4n,
    byReason: { refund: 1n, "asks for a human": 3n, billing: 1n },
    byOutcome: { RETURNED_TO_AI: 2n, RESOLVED_BY_HUMAN: 1n },
    timeToClaim: { count: 3n, p50: { seconds: 42n, nanos: 0 }, p90: { seconds: 300n, nanos: 0 } },
  });
  const charts = statsCharts(stats, 2);
  assert.deepEqual(charts.reasons.map((b) => [b.label, b.value]), [["asks for a human", 3], ["billing", 1], ["other reasons", 1]]);
  assert.deepEqual(charts.timeToClaim.map((b) => b.display), ["42 s", "5.0 min"]);
  assert.deepEqual(charts.timeToReply, []);
  assert.equal(charts.rate[1]!.display, "3 (30 %)");
  assert.deepEqual(charts.outcomes.map((b) => b.label), ["returned to ai", "resolved by human"]);
});

test("durations read as a person would", () => {
  assert.equal(formatDuration(12.4), "12 s");
  assert.equal(formatDuration(150), "2.5 min");
  assert.equal(formatDuration(7200), "2.0 h");
});

test("backoff: exponential cap with jitter, never zero, never above the maximum", () => {
  assert.equal(backoffDelay(0, { initialMs: 100, maxMs: 1000 }, () => 0), 10);
  assert.equal(backoffDelay(0, { initialMs: 100, maxMs: 1000 }, () => 0.999999), 100);
  assert.equal(backoffDelay(3, { initialMs: 100, maxMs: 1000 }, () => 0.999999), 800);
  assert.equal(backoffDelay(50, { initialMs: 100, maxMs: 1000 }, () => 0.999999), 1000);
});
