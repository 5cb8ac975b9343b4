package dev.baton.client;

import dev.baton.v1.Event;
import io.grpc.Status;
import java.time.Duration;

/**
 * Callbacks of a follow subscription. All are called from gRPC or reconnect threads, one at a
 * time and never concurrently, so an implementation needs no locking of its own state.
 */
public interface FollowListener {
  /**
   * The next event of the log, in offset order, each exactly once across reconnects. Throwing
   * ends the subscription: {@link #onError} is then called with what was thrown.
   */
  void onEvent(Event event);

  /**
   * The stream has delivered every event stored when it (re)connected; what follows is live.
   * Called once per connection, so again after each reconnect.
   */
  default void onCaughtUp() {}

  /**
   * The stream broke with a retryable status (or ended, which a follow stream never should) and
   * will reconnect after {@code delay}, resuming at {@code nextOffset}.
   */
  default void onReconnecting(Status status, int attempt, Duration delay, long nextOffset) {}

  /**
   * The subscription ended for good: a non-retryable status (NOT_FOUND when the session does not
   * exist or was deleted, INVALID_ARGUMENT, ...), too many reconnects, or {@link #onEvent} threw.
   * Not called after {@link Subscription#close()}.
   */
  default void onError(Throwable error) {}
}
