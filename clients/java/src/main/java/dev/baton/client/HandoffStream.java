package dev.baton.client;

import dev.baton.v1.HandoffChange;
import java.time.Duration;
import java.util.Iterator;

/**
 * The operator inbox as a blocking, single-use iterator, from {@link
 * BatonClient#watchHandoffs(WatchOptions)}: every change exactly once, in position order, across
 * reconnects and server restarts. Same contract as {@link EventStream}: {@code hasNext()}/{@code
 * next()} block, {@link #poll(Duration)} returns null on timeout, a terminal error is thrown once
 * the buffered changes are consumed, {@link #close()} cancels.
 */
public final class HandoffStream implements Iterator<HandoffChange>, Iterable<HandoffChange>, AutoCloseable {
  private final BlockingBuffer<HandoffChange> buffer;
  private volatile HandoffWatch watch;

  HandoffStream(int capacity) {
    this.buffer = new BlockingBuffer<>(capacity);
  }

  void attach(HandoffWatch watch) {
    this.watch = watch;
  }

  HandoffListener listener() {
    return new HandoffListener() {
      @Override
      public void onChange(HandoffChange change) {
        buffer.put(change);
      }

      @Override
      public void onCaughtUp(long position) {
        buffer.markCaughtUp();
      }

      @Override
      public void onError(Throwable t) {
        buffer.fail(t);
      }
    };
  }

  @Override
  public Iterator<HandoffChange> iterator() {
    return this;
  }

  @Override
  public boolean hasNext() {
    return buffer.hasNext();
  }

  @Override
  public HandoffChange next() {
    return buffer.next();
  }

  /** The next change, waiting at most {@code timeout}; null on timeout or once closed. */
  public HandoffChange poll(Duration timeout) throws InterruptedException {
    return buffer.poll(timeout);
  }

  /** Waits until the first connection sent the snapshot or the missed changes; false on timeout. */
  public boolean awaitCaughtUp(Duration timeout) throws InterruptedException {
    return buffer.awaitCaughtUp(timeout);
  }

  /** The position the watch resumes after (see {@link HandoffWatch#lastPosition()}). */
  public long lastPosition() {
    HandoffWatch w = watch;
    return w == null ? -1 : w.lastPosition();
  }

  @Override
  public void close() {
    buffer.close();
    HandoffWatch w = watch;
    if (w != null) {
      w.close();
    }
  }
}
