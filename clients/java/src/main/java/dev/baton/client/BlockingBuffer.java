package dev.baton.client;

import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.NoSuchElementException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The bounded hand-over between a subscription's callbacks (producer, a gRPC thread) and a
 * blocking reader: {@link EventStream} and {@link HandoffStream} are built on it. A full buffer
 * blocks the producer, which slows the stream down through gRPC flow control; nothing is dropped.
 */
final class BlockingBuffer<T> {
  private final int capacity;
  private final ArrayDeque<T> buffer = new ArrayDeque<>();
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition changed = lock.newCondition();
  private Throwable error; // guarded by lock
  private boolean closed; // guarded by lock
  private boolean caughtUp; // guarded by lock

  BlockingBuffer(int capacity) {
    this.capacity = capacity;
  }

  /** Producer: adds one item, waiting while the buffer is full; dropped once closed. */
  void put(T item) {
    lock.lock();
    try {
      while (buffer.size() >= capacity && !closed) {
        changed.await();
      }
      if (closed) {
        return;
      }
      buffer.addLast(item);
      changed.signalAll();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
    } finally {
      lock.unlock();
    }
  }

  void markCaughtUp() {
    lock.lock();
    try {
      caughtUp = true;
      changed.signalAll();
    } finally {
      lock.unlock();
    }
  }

  void fail(Throwable t) {
    lock.lock();
    try {
      error = t;
      changed.signalAll();
    } finally {
      lock.unlock();
    }
  }

  boolean hasNext() {
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
      throw Status.CANCELLED.withDescription("interrupted while waiting").asRuntimeException();
    } finally {
      lock.unlock();
    }
  }

  T next() {
    if (!hasNext()) {
      throw new NoSuchElementException("stream closed");
    }
    lock.lock();
    try {
      T item = buffer.pollFirst();
      changed.signalAll();
      return item;
    } finally {
      lock.unlock();
    }
  }

  T poll(Duration timeout) throws InterruptedException {
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
        T item = buffer.pollFirst();
        changed.signalAll();
        return item;
      }
      if (closed) {
        return null;
      }
      throw rethrow(error);
    } finally {
      lock.unlock();
    }
  }

  boolean awaitCaughtUp(Duration timeout) throws InterruptedException {
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

  void close() {
    lock.lock();
    try {
      closed = true;
      buffer.clear();
      changed.signalAll();
    } finally {
      lock.unlock();
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
