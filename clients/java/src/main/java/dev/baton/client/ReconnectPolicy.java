package dev.baton.client;

import io.grpc.Status;
import java.time.Duration;
import java.util.Set;

/**
 * The reconnect settings a {@link FollowOptions} or {@link WatchOptions} holds: backoff, attempts,
 * retried status codes and buffer size. Immutable; made by {@link ReconnectingBuilder#policy()}.
 *
 * <p>The n-th consecutive reconnect waits a random time between {@code (1 - jitter) * d} and
 * {@code d}, where {@code d = min(maxBackoff, initialBackoff * multiplier^(n-1))}.
 */
final class ReconnectPolicy {
  private final Duration initialBackoff;
  private final Duration maxBackoff;
  private final double multiplier;
  private final double jitter;
  private final int maxAttempts;
  private final Set<Status.Code> retryOn;
  private final int bufferSize;

  ReconnectPolicy(
      Duration initialBackoff,
      Duration maxBackoff,
      double multiplier,
      double jitter,
      int maxAttempts,
      Set<Status.Code> retryOn,
      int bufferSize) {
    this.initialBackoff = initialBackoff;
    this.maxBackoff = maxBackoff;
    this.multiplier = multiplier;
    this.jitter = jitter;
    this.maxAttempts = maxAttempts;
    this.retryOn = Set.copyOf(retryOn);
    this.bufferSize = bufferSize;
  }

  Duration initialBackoff() {
    return initialBackoff;
  }

  Duration maxBackoff() {
    return maxBackoff;
  }

  double multiplier() {
    return multiplier;
  }

  double jitter() {
    return jitter;
  }

  /** Consecutive failed reconnects before giving up; 0 means never give up. */
  int maxAttempts() {
    return maxAttempts;
  }

  Set<Status.Code> retryOn() {
    return retryOn;
  }

  int bufferSize() {
    return bufferSize;
  }

  /** True once the {@code attempt}-th consecutive reconnect (1-based) is one too many. */
  boolean exhausted(int attempt) {
    return maxAttempts > 0 && attempt > maxAttempts;
  }

  /**
   * The wait before the {@code attempt}-th consecutive reconnect (1-based), jitter included:
   * {@code min(max, initial * multiplier^(attempt-1))}, minus up to {@code jitter} of it.
   */
  Duration backoff(int attempt, double random01) {
    double base = initialBackoff.toNanos() * Math.pow(multiplier, Math.max(0, attempt - 1));
    double capped = Math.min(base, (double) maxBackoff.toNanos());
    double jittered = capped * (1.0 - jitter * random01);
    return Duration.ofNanos((long) jittered);
  }
}
