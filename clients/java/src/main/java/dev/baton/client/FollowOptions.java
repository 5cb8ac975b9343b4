package dev.baton.client;

import dev.baton.v1.EventKind;
import dev.baton.v1.EventSource;
import io.grpc.Status;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * Settings of a follow subscription: server-side filters, reconnect backoff and the buffer of the
 * blocking {@link EventStream}. Immutable; build with {@link #builder()}.
 *
 * <p>Backoff: the n-th consecutive reconnect waits a random time between {@code (1 - jitter) * d}
 * and {@code d}, where {@code d = min(maxBackoff, initialBackoff * multiplier^(n-1))}. The count
 * starts over once a new stream delivers anything.
 */
public final class FollowOptions {
  private static final FollowOptions DEFAULTS = builder().build();

  private final List<EventKind> kinds;
  private final List<EventSource> sources;
  private final Duration initialBackoff;
  private final Duration maxBackoff;
  private final double multiplier;
  private final double jitter;
  private final int maxAttempts;
  private final Set<Status.Code> retryOn;
  private final int bufferSize;

  private FollowOptions(Builder b) {
    this.kinds = List.copyOf(b.kinds);
    this.sources = List.copyOf(b.sources);
    this.initialBackoff = b.initialBackoff;
    this.maxBackoff = b.maxBackoff;
    this.multiplier = b.multiplier;
    this.jitter = b.jitter;
    this.maxAttempts = b.maxAttempts;
    this.retryOn = Set.copyOf(b.retryOn);
    this.bufferSize = b.bufferSize;
  }

  /** No filters; backoff 250 ms doubling up to 10 s with 50% jitter, retried forever on UNAVAILABLE. */
  public static FollowOptions defaults() {
    return DEFAULTS;
  }

  public static Builder builder() {
    return new Builder();
  }

  public List<EventKind> kinds() {
    return kinds;
  }

  public List<EventSource> sources() {
    return sources;
  }

  public Duration initialBackoff() {
    return initialBackoff;
  }

  public Duration maxBackoff() {
    return maxBackoff;
  }

  public double multiplier() {
    return multiplier;
  }

  public double jitter() {
    return jitter;
  }

  /** Consecutive failed reconnects before giving up; 0 means never give up. */
  public int maxAttempts() {
    return maxAttempts;
  }

  public Set<Status.Code> retryOn() {
    return retryOn;
  }

  public int bufferSize() {
    return bufferSize;
  }

  /** The wait before the {@code attempt}-th consecutive reconnect (1-based), jitter included. */
  Duration backoff(int attempt, double random01) {
    return delay(initialBackoff, maxBackoff, multiplier, jitter, attempt, random01);
  }

  /** {@code min(max, initial * multiplier^(attempt-1))}, minus up to {@code jitter} of it. */
  static Duration delay(
      Duration initial, Duration max, double multiplier, double jitter, int attempt, double random01) {
    double base = initial.toNanos() * Math.pow(multiplier, Math.max(0, attempt - 1));
    double capped = Math.min(base, (double) max.toNanos());
    double jittered = capped * (1.0 - jitter * random01);
    return Duration.ofNanos((long) jittered);
  }

  public static final class Builder {
    private List<EventKind> kinds = List.of();
    private List<EventSource> sources = List.of();
    private Duration initialBackoff = Duration.ofMillis(250);
    private Duration maxBackoff = Duration.ofSeconds(10);
    private double multiplier = 2.0;
    private double jitter = 0.5;
    private int maxAttempts = 0;
    private Set<Status.Code> retryOn = EnumSet.of(Status.Code.UNAVAILABLE);
    private int bufferSize = 1024;

    private Builder() {}

    /** Only events of these kinds (server-side filter); none means all. */
    public Builder kinds(EventKind... kinds) {
      this.kinds = List.of(kinds);
      return this;
    }

    /** Only events from these sources (server-side filter); none means all. */
    public Builder sources(EventSource... sources) {
      this.sources = List.of(sources);
      return this;
    }

    public Builder initialBackoff(Duration d) {
      this.initialBackoff = positive(d, "initialBackoff");
      return this;
    }

    public Builder maxBackoff(Duration d) {
      this.maxBackoff = positive(d, "maxBackoff");
      return this;
    }

    public Builder multiplier(double m) {
      if (!(m >= 1.0)) {
        throw new IllegalArgumentException("multiplier must be >= 1");
      }
      this.multiplier = m;
      return this;
    }

    /** Fraction of each wait that is randomised, in [0, 1]. */
    public Builder jitter(double j) {
      if (!(j >= 0.0 && j <= 1.0)) {
        throw new IllegalArgumentException("jitter must be in [0, 1]");
      }
      this.jitter = j;
      return this;
    }

    /** Consecutive failed reconnects before the subscription fails; 0 (default) = unlimited. */
    public Builder maxAttempts(int n) {
      if (n < 0) {
        throw new IllegalArgumentException("maxAttempts must be >= 0");
      }
      this.maxAttempts = n;
      return this;
    }

    /** Status codes that trigger a reconnect (default: UNAVAILABLE); others end the subscription. */
    public Builder retryOn(Status.Code... codes) {
      this.retryOn = codes.length == 0 ? EnumSet.noneOf(Status.Code.class) : EnumSet.of(codes[0], codes);
      return this;
    }

    /** Events the blocking {@link EventStream} buffers before it slows the stream down. */
    public Builder bufferSize(int n) {
      if (n < 1) {
        throw new IllegalArgumentException("bufferSize must be >= 1");
      }
      this.bufferSize = n;
      return this;
    }

    public FollowOptions build() {
      if (maxBackoff.compareTo(initialBackoff) < 0) {
        throw new IllegalArgumentException("maxBackoff must be >= initialBackoff");
      }
      return new FollowOptions(this);
    }

    private static Duration positive(Duration d, String name) {
      Objects.requireNonNull(d, name);
      if (d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException(name + " must be positive");
      }
      return d;
    }
  }
}
