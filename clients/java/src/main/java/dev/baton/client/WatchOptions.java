package dev.baton.client;

import dev.baton.v1.Participant;
import io.grpc.Status;
import java.time.Duration;
import java.util.EnumSet;
import java.util.Objects;
import java.util.Set;

/**
 * Settings of an operator inbox watch ({@link BatonClient#watchHandoffs}): which handoffs, who
 * watches, where to start, and the reconnect backoff. Immutable; build with {@link #builder()}.
 *
 * <p>Backoff as for {@link FollowOptions}: the n-th consecutive reconnect waits a random time
 * between {@code (1 - jitter) * d} and {@code d}, {@code d = min(maxBackoff, initialBackoff *
 * multiplier^(n-1))}; defaults 250 ms, x2, 10 s, 50% jitter, unlimited attempts on UNAVAILABLE.
 */
public final class WatchOptions {
  private static final WatchOptions DEFAULTS = builder().build();

  private final String agentId;
  private final Participant operator;
  private final Long afterPosition;
  private final Duration initialBackoff;
  private final Duration maxBackoff;
  private final double multiplier;
  private final double jitter;
  private final int maxAttempts;
  private final Set<Status.Code> retryOn;
  private final int bufferSize;

  private WatchOptions(Builder b) {
    this.agentId = b.agentId;
    this.operator = b.operator;
    this.afterPosition = b.afterPosition;
    this.initialBackoff = b.initialBackoff;
    this.maxBackoff = b.maxBackoff;
    this.multiplier = b.multiplier;
    this.jitter = b.jitter;
    this.maxAttempts = b.maxAttempts;
    this.retryOn = Set.copyOf(b.retryOn);
    this.bufferSize = b.bufferSize;
  }

  /** All agents, anonymous watcher, starting with the open handoffs; default backoff. */
  public static WatchOptions defaults() {
    return DEFAULTS;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Only handoffs of this agent's sessions; "" means all agents. */
  public String agentId() {
    return agentId;
  }

  /** The operator watching (counts them as available), or null. */
  public Participant operator() {
    return operator;
  }

  /** Resume after this position; null starts with the snapshot of open handoffs. */
  public Long afterPosition() {
    return afterPosition;
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

  Duration backoff(int attempt, double random01) {
    return FollowOptions.delay(initialBackoff, maxBackoff, multiplier, jitter, attempt, random01);
  }

  public static final class Builder {
    private String agentId = "";
    private Participant operator;
    private Long afterPosition;
    private Duration initialBackoff = Duration.ofMillis(250);
    private Duration maxBackoff = Duration.ofSeconds(10);
    private double multiplier = 2.0;
    private double jitter = 0.5;
    private int maxAttempts = 0;
    private Set<Status.Code> retryOn = EnumSet.of(Status.Code.UNAVAILABLE);
    private int bufferSize = 1024;

    private Builder() {}

    public Builder agentId(String agentId) {
      this.agentId = Objects.requireNonNull(agentId, "agentId");
      return this;
    }

    /** The operator watching; an operator key bound to an operator id must name that one. */
    public Builder operator(Participant operator) {
      this.operator = operator;
      return this;
    }

    /** Resume after a position a previous watch delivered ({@link HandoffWatch#lastPosition()}). */
    public Builder afterPosition(long position) {
      if (position < 0) {
        throw new IllegalArgumentException("afterPosition must not be negative");
      }
      this.afterPosition = position;
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

    public Builder maxAttempts(int n) {
      if (n < 0) {
        throw new IllegalArgumentException("maxAttempts must be >= 0");
      }
      this.maxAttempts = n;
      return this;
    }

    public Builder retryOn(Status.Code... codes) {
      this.retryOn = codes.length == 0 ? EnumSet.noneOf(Status.Code.class) : EnumSet.of(codes[0], codes);
      return this;
    }

    public Builder bufferSize(int n) {
      if (n < 1) {
        throw new IllegalArgumentException("bufferSize must be >= 1");
      }
      this.bufferSize = n;
      return this;
    }

    public WatchOptions build() {
      if (maxBackoff.compareTo(initialBackoff) < 0) {
        throw new IllegalArgumentException("maxBackoff must be >= initialBackoff");
      }
      return new WatchOptions(this);
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
