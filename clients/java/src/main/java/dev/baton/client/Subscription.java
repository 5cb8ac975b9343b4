package dev.baton.client;

/** Handle of a running follow subscription. */
public interface Subscription extends AutoCloseable {
  /** Offset of the next event to deliver: the last delivered offset + 1 (or the start offset). */
  long nextOffset();

  /** True once closed by {@link #close()} or ended by an error. */
  boolean isDone();

  /** Cancels the stream and any pending reconnect. Idempotent; no callback follows it. */
  @Override
  void close();
}
