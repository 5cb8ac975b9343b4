package dev.baton.client;

/** Handle of a running operator inbox watch. */
public interface HandoffWatch extends AutoCloseable {
  /**
   * The position the watch resumes after: the last delivered change's, or a later one the
   * server reported (caught up, heartbeat); -1 before any. Snapshot entries (type OPEN) do not
   * move it (resuming after the snapshot's position would skip the entries not yet handled): it
   * stays -1 while they are delivered and moves on at caught_up. Save it to resume in a later process
   * with {@link WatchOptions.Builder#afterPosition(long)}.
   */
  long lastPosition();

  /** True once closed or ended by an error. */
  boolean isDone();

  /** Cancels the stream and any pending reconnect. Idempotent; no callback follows it. */
  @Override
  void close();
}
