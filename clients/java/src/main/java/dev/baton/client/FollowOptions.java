package dev.baton.client;

import dev.baton.v1.EventKind;
import dev.baton.v1.EventSource;
import java.util.List;

/**
 * Settings of a follow subscription: server-side filters, reconnect backoff and the buffer of the
 * blocking {@link EventStream}. Immutable; build with {@link #builder()}.
 *
 * <p>Backoff: the n-th consecutive reconnect waits a random time between {@code (1 - jitter) * d}
 * and {@code d}, where {@code d = min(maxBackoff, initialBackoff * multiplier^(n-1))}. The count
 * starts over once a new stream delivers anything.
 */
public final class FollowOptions extends ReconnectingOptions {
  private static final FollowOptions DEFAULTS = builder().build();

  private final List<EventKind> kinds;
  private final List<EventSource> sources;

  private FollowOptions(Builder b) {
    super(b.policy());
    this.kinds = List.copyOf(b.kinds);
    this.sources = List.copyOf(b.sources);
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

  public static final class Builder extends ReconnectingBuilder<Builder> {
    private List<EventKind> kinds = List.of();
    private List<EventSource> sources = List.of();

    private Builder() {}

    @Override
    Builder self() {
      return this;
    }

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

    public FollowOptions build() {
      return new FollowOptions(this);
    }
  }
}
