// Jittered exponential backoff (shared by retries, follow and watchHandoffs).
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelayMs } from "../dist/index.js";

test("backoff doubles from the initial delay up to the cap", () => {
  const top = (attempt: number) =>
    backoffDelayMs(attempt, { initialBackoffMs: 100, maxBackoffMs: 1_000 }, () => 1);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(top), [100, 200, 400, 800, 1000, 1000]);
});

test("backoff jitter stays within [ceiling/2, ceiling]", () => {
  const opts = { initialBackoffMs: 200, maxBackoffMs: 10_000 };
  assert.equal(backoffDelayMs(3, opts, () => 0), 400);
  assert.equal(backoffDelayMs(3, opts, () => 1), 800);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelayMs(3, opts);
    assert.ok(d >= 400 && d <= 800, `delay ${d}`);
  }
});

test("backoff defaults: 200 ms first, 10 s at most, never negative", () => {
  assert.equal(backoffDelayMs(1, {}, () => 1), 200);
  assert.equal(backoffDelayMs(50, {}, () => 1), 10_000);
  assert.equal(backoffDelayMs(0, {}, () => 0), 100);
});
