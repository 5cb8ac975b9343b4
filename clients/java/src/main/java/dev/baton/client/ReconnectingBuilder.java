package dev.baton.client;

import io.grpc.Status;
import java.time.Duration;
import java.util.EnumSet;
import java.util.Objects;
import java.util.Set;

/**
 * The reconnect settings shared by {@link FollowOptions.Builder} and {@link WatchOptions.Builder}.
 * Each setter returns the concrete builder, so calls chain into its own settings and {@code
 * build()}. Defaults: 250 ms doubling up to 10 s with 50% jitter, unlimited attempts on
 * UNAVAILABLE, a buffer of 1024.
 *
 * @param <B> the concrete builder
 */
public abstract class ReconnectingBuilder<B extends ReconnectingBuilder<B>> {
  private Duration initialBackoff = Duration.ofMillis(250);
  private Duration maxBackoff = Duration.ofSeconds(10);
  private double multiplier = 2.0;
  private double jitter = 0.5;
  private int maxAttempts = 0;
  private Set<Status.Code> retryOn = EnumSet.of(Status.Code.UNAVAILABLE);
  private int bufferSize = 1024;

  ReconnectingBuilder() {}

  abstract B self();

  public B initialBackoff(Duration d) {
    this.initialBackoff = positive(d, "initialBackoff");
    return self();
  }

  public B maxBackoff(Duration d) {
    this.maxBackoff = positive(d, "maxBackoff");
    return self();
  }

  public B multiplier(double m) {
    if (!(m >= 1.0)) {
      throw new IllegalArgumentException("multiplier must be >= 1");
    }
    this.multiplier = m;
    return self();
  }

  /** Fraction of each wait that is randomised, in [0, 1]. */
  public B jitter(double j) {
    if (!(j >= 0.0 && j <= 1.0)) {
      throw new IllegalArgumentException("jitter must be in [0, 1]");
    }
    this.jitter = j;
    return self();
  }

  /** Consecutive failed reconnects before the stream fails; 0 (default) = unlimited. */
  public B maxAttempts(int n) {
    if (n < 0) {
      throw new IllegalArgumentException("maxAttempts must be >= 0");
    }
    this.maxAttempts = n;
    return self();
  }

  /** Status codes that trigger a reconnect (default: UNAVAILABLE); others end the stream. */
  public B retryOn(Status.Code... codes) {
    this.retryOn = codes.length == 0 ? EnumSet.noneOf(Status.Code.class) : EnumSet.of(codes[0], codes);
    return self();
  }

  /** Items the blocking stream buffers before it slows the stream down. */
  public B bufferSize(int n) {
    if (n < 1) {
      throw new IllegalArgumentException("bufferSize must be >= 1");
    }
    this.bufferSize = n;
    return self();
  }

  /** The settings so far, checked as a whole (for {@code build()}). */
  ReconnectPolicy policy() {
    if (maxBackoff.compareTo(initialBackoff) < 0) {
      throw new IllegalArgumentException("maxBackoff must be >= initialBackoff");
    }
    return new ReconnectPolicy(
        initialBackoff, maxBackoff, multiplier, jitter, maxAttempts, retryOn, bufferSize);
  }

  private static Duration positive(Duration d, String name) {
    Objects.requireNonNull(d, name);
    if (d.isNegative() || d.isZero()) {
      throw new IllegalArgumentException(name + " must be positive");
    }
    return d;
  }
}
