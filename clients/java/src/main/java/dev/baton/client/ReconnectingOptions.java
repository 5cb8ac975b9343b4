package dev.baton.client;

import io.grpc.Status;
import java.time.Duration;
import java.util.Set;

/**
 * The reconnect settings shared by {@link FollowOptions} and {@link WatchOptions}, as set by
 * {@link ReconnectingBuilder}. Immutable.
 */
public abstract class ReconnectingOptions {
  private final ReconnectPolicy policy;

  ReconnectingOptions(ReconnectPolicy policy) {
    this.policy = policy;
  }

  public Duration initialBackoff() {
    return policy.initialBackoff();
  }

  public Duration maxBackoff() {
    return policy.maxBackoff();
  }

  public double multiplier() {
    return policy.multiplier();
  }

  public double jitter() {
    return policy.jitter();
  }

  /** Consecutive failed reconnects before giving up; 0 means never give up. */
  public int maxAttempts() {
    return policy.maxAttempts();
  }

  public Set<Status.Code> retryOn() {
    return policy.retryOn();
  }

  public int bufferSize() {
    return policy.bufferSize();
  }

  /** The wait before the {@code attempt}-th consecutive reconnect (1-based), jitter included. */
  Duration backoff(int attempt, double random01) {
    return policy.backoff(attempt, random01);
  }

  ReconnectPolicy policy() {
    return policy;
  }
}
