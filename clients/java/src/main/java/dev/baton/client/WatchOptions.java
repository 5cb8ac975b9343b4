package dev.baton.client;

import dev.baton.v1.Participant;
import java.util.Objects;

/**
 * Settings of an operator inbox watch ({@link BatonClient#watchHandoffs}): which handoffs, who
 * watches, where to start, and the reconnect backoff. Immutable; build with {@link #builder()}.
 *
 * <p>Backoff as for {@link FollowOptions}: the n-th consecutive reconnect waits a random time
 * between {@code (1 - jitter) * d} and {@code d}, {@code d = min(maxBackoff, initialBackoff *
 * multiplier^(n-1))}; defaults 250 ms, x2, 10 s, 50% jitter, unlimited attempts on UNAVAILABLE.
 */
public final class WatchOptions extends ReconnectingOptions {
  private static final WatchOptions DEFAULTS = builder().build();

  private final String agentId;
  private final Participant operator;
  private final Long afterPosition;

  private WatchOptions(Builder b) {
    super(b.policy());
    this.agentId = b.agentId;
    this.operator = b.operator;
    this.afterPosition = b.afterPosition;
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

  public static final class Builder extends ReconnectingBuilder<Builder> {
    private String agentId = "";
    private Participant operator;
    private Long afterPosition;

    private Builder() {}

    @Override
    Builder self() {
      return this;
    }

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

    public WatchOptions build() {
      return new WatchOptions(this);
    }
  }
}
