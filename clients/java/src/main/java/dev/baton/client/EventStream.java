package dev.baton.client;

import dev.baton.v1.Event;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

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
  private final int capacity;
  private final ArrayDeque<Event> buffer = new ArrayDeque<>();
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition changed = lock.newCondition();
  private Throwable error; // guarded by lock
  private boolean closed; // guarded by lock
  private boolean caughtUp; // guarded by lock
  private volatile Subscription subscription;

  EventStream(int capacity) {
    this.capacity = capacity;
  }

  void attach(Subscription subscription) {
    this.subscription = subscription;
  }

  FollowListener listener() {
    return new FollowListener() {
      @Override
      public void onEvent(Event event) {
        lock.lock();
        try {
          while (buffer.size() >= capacity && !closed) {
            changed.await();
          }
          if (closed) {
            return;
          }
          buffer.addLast(event);
          changed.signalAll();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
        } finally {
          lock.unlock();
        }
      }

      @Override
      public void onCaughtUp() {
        lock.lock();
        try {
          caughtUp = true;
          changed.signalAll();
        } finally {
          lock.unlock();
        }
      }

      @Override
      public void onError(Throwable t) {
        lock.lock();
        try {
          error = t;
          changed.signalAll();
        } finally {
          lock.unlock();
        }
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
    lock.lock();
    try {
      while (buffer.isEmpty() && error == null && !closed) {
        changed.await();
      }
      if (!buffer.isEmpty()) {
        return true;
      }
      if (closed) {
        return false;
      }
      throw rethrow(error);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted while waiting for events").asRuntimeException();
    } finally {
      lock.unlock();
    }
  }

  @Override
  public Event next() {
    if (!hasNext()) {
      throw new NoSuchElementException("event stream closed");
    }
    lock.lock();
    try {
      Event e = buffer.pollFirst();
      changed.signalAll();
      return e;
    } finally {
      lock.unlock();
    }
  }

  /**
   * The next event, waiting at most {@code timeout}; {@code null} on timeout or once closed.
   * Throws the subscription's terminal error once the buffered events are consumed.
   */
  public Event poll(Duration timeout) throws InterruptedException {
    long nanos = timeout.toNanos();
    lock.lock();
    try {
      while (buffer.isEmpty() && error == null && !closed) {
        if (nanos <= 0) {
          return null;
        }
        nanos = changed.awaitNanos(nanos);
      }
      if (!buffer.isEmpty()) {
        Event e = buffer.pollFirst();
        changed.signalAll();
        return e;
      }
      if (closed) {
        return null;
      }
      throw rethrow(error);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Waits until the first connection delivered all stored history (the server's
   * {@code caught_up} marker); false on timeout. Buffered events are not consumed.
   */
  public boolean awaitCaughtUp(Duration timeout) throws InterruptedException {
    long nanos = timeout.toNanos();
    lock.lock();
    try {
      while (!caughtUp && error == null && !closed) {
        if (nanos <= 0) {
          return false;
        }
        nanos = changed.awaitNanos(nanos);
      }
      return caughtUp;
    } finally {
      lock.unlock();
    }
  }

  /** Offset the stream resumes from on its next reconnect (events buffered count as delivered). */
  public long nextOffset() {
    Subscription s = subscription;
    return s == null ? 0 : s.nextOffset();
  }

  /** Cancels the stream; {@link #hasNext()} then returns false. Idempotent. */
  @Override
  public void close() {
    lock.lock();
    try {
      closed = true;
      buffer.clear();
      changed.signalAll();
    } finally {
      lock.unlock();
    }
    Subscription s = subscription;
    if (s != null) {
      s.close();
    }
  }

  private static RuntimeException rethrow(Throwable t) {
    if (t instanceof RuntimeException) {
      return (RuntimeException) t;
    }
    if (t instanceof Error) {
      throw (Error) t;
    }
    return new RuntimeException(t);
  }
}
