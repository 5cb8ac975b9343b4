package dev.baton.client;

import dev.baton.v1.Event;
import java.time.Duration;
import java.util.Iterator;

/**
 * A followed session log as a blocking, single-use iterator, from {@link BatonClient#follow}.
 * Events come in offset order, each exactly once, across reconnects (which happen behind it).
 *
 * <ul>
 *   <li>{@link #hasNext()}/{@link #next()} block until an event arrives; use it in a for-each
 *       loop on a thread of its own. They throw the subscription's terminal error (for example a
 *       {@link io.grpc.StatusRuntimeException} with NOT_FOUND) once the events received before it
 *       are consumed, and end ({@code hasNext() == false}) after {@link #close()}.
 *   <li>{@link #poll(Duration)} waits at most the given time and returns {@code null} on timeout.
 * </ul>
 *
 * <p>Up to {@link FollowOptions#bufferSize()} events are buffered; beyond that the stream is
 * slowed down (gRPC flow control), never dropped. Close it to cancel the stream.
 */
public final class EventStream implements Iterator<Event>, Iterable<Event>, AutoCloseable {
  private final BlockingBuffer<Event> buffer;
  private volatile Subscription subscription;

  EventStream(int capacity) {
    this.buffer = new BlockingBuffer<>(capacity);
  }

  void attach(Subscription subscription) {
    this.subscription = subscription;
  }

  FollowListener listener() {
    return new FollowListener() {
      @Override
      public void onEvent(Event event) {
        buffer.put(event);
      }

      @Override
      public void onCaughtUp() {
        buffer.markCaughtUp();
      }

      @Override
      public void onError(Throwable t) {
        buffer.fail(t);
      }
    };
  }

  /** This stream itself: it can be iterated once. */
  @Override
  public Iterator<Event> iterator() {
    return this;
  }

  @Override
  public boolean hasNext() {
    return buffer.hasNext();
  }

  @Override
  public Event next() {
    return buffer.next();
  }

  /**
   * The next event, waiting at most {@code timeout}; {@code null} on timeout or once closed.
   * Throws the subscription's terminal error once the buffered events are consumed.
   */
  public Event poll(Duration timeout) throws InterruptedException {
    return buffer.poll(timeout);
  }

  /**
   * Waits until the first connection delivered all stored history (the server's
   * {@code caught_up} marker); false on timeout. Buffered events are not consumed.
   */
  public boolean awaitCaughtUp(Duration timeout) throws InterruptedException {
    return buffer.awaitCaughtUp(timeout);
  }

  /** Offset the stream resumes from on its next reconnect (events buffered count as delivered). */
  public long nextOffset() {
    Subscription s = subscription;
    return s == null ? 0 : s.nextOffset();
  }

  /** Cancels the stream; {@link #hasNext()} then returns false. Idempotent. */
  @Override
  public void close() {
    buffer.close();
    Subscription s = subscription;
    if (s != null) {
      s.close();
    }
  }
}
