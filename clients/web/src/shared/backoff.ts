// Reconnect delays: exponential with full jitter (a random delay up to the exponential cap),
// so a server restart does not bring every widget back in the same millisecond.
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 10_000 };

/** Delay before reconnect attempt `attempt` (0-based); `random` in [0, 1). */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const cap = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  // At least a tenth of the cap, so a tight loop never spins at 0 ms.
  return Math.round(cap * (0.1 + 0.9 * random()));
}
