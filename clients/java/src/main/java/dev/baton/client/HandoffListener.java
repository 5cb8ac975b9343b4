package dev.baton.client;

import dev.baton.v1.HandoffChange;
import io.grpc.Status;
import java.time.Duration;

/**
 * Callbacks of an operator inbox watch ({@link BatonClient#watchHandoffs}), called one at a time,
 * never concurrently, on gRPC or reconnect threads.
 */
public interface HandoffListener {
  /**
   * The next change, each exactly once across reconnects. Changes of type OPEN (the snapshot of
   * open handoffs a watch without a start position begins with) all carry the snapshot's
   * position and are delivered together with what else came before {@code caught_up}, once that
   * arrives (a connection that breaks mid-snapshot delivers none of it; the next one asks for a
   * new snapshot); every later change has a strictly greater position than the one before it.
   * Throwing ends the watch ({@link #onError} follows).
   */
  void onChange(HandoffChange change);

  /** The stream sent everything up to {@code position}; what follows is live. Once per connection. */
  default void onCaughtUp(long position) {}

  /**
   * The stream broke with a retryable status and reconnects after {@code delay}, resuming after
   * {@code afterPosition} (-1: no position yet, the snapshot is asked for again).
   */
  default void onReconnecting(Status status, int attempt, Duration delay, long afterPosition) {}

  /** The watch ended for good (non-retryable status, too many attempts, onChange threw). */
  default void onError(Throwable error) {}
}
