package dev.baton.client;

import io.grpc.ConnectivityState;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * The reconnect engine shared by {@link Follower} and {@link HandoffWatcher}: one call at a time;
 * when it breaks with a retryable status or ends, the next starts after the policy's backoff.
 * Counts consecutive attempts (a subclass resets {@link #attempt} on progress), gives up after
 * {@link ReconnectPolicy#maxAttempts()}, and ends for good on close or a non-retryable status.
 */
abstract class Reconnects {
  private final Object lock = new Object();
  private final ScheduledExecutorService scheduler;
  private final ManagedChannel channel; // null when unknown
  private final ReconnectPolicy policy;
  private final String gaveUp;
  volatile boolean done;
  volatile int attempt;
  private Context.CancellableContext current; // guarded by lock
  private ScheduledFuture<?> pending; // guarded by lock

  /** {@code gaveUp} starts the description added on giving up, e.g. "gave up following". */
  Reconnects(
      ManagedChannel channel, ScheduledExecutorService scheduler, ReconnectPolicy policy, String gaveUp) {
    this.channel = channel;
    this.scheduler = scheduler;
    this.policy = policy;
    this.gaveUp = gaveUp;
  }

  /** Starts a call (in {@link #open()}'s context). */
  abstract void connect();

  /** Tells the listener that the {@code attempt}-th reconnect follows in {@code delay}. */
  abstract void reconnecting(Status status, int attempt, Duration delay);

  /** Tells the listener that the stream ended for good with {@code t}. */
  abstract void failed(Throwable t);

  public boolean isDone() {
    return done;
  }

  public void close() {
    synchronized (lock) {
      if (done) {
        return;
      }
      done = true;
      cancelLocked();
    }
  }

  /**
   * Ends the reconnects but lets the current call run on (a graceful drain): when it ends,
   * nothing follows. {@link #abort()} cancels it if it takes too long.
   */
  final void finish() {
    synchronized (lock) {
      done = true;
      if (pending != null) {
        pending.cancel(false);
        pending = null;
      }
    }
  }

  /** Cancels the current call and any pending reconnect. */
  final void abort() {
    synchronized (lock) {
      cancelLocked();
    }
  }

  /**
   * Cancels the current call with {@code status}: its observer sees that status, so the stream
   * reconnects when the policy retries it (e.g. UNAVAILABLE for a server gone silent).
   */
  final void interrupt(Status status) {
    synchronized (lock) {
      if (current != null) {
        current.cancel(status.asRuntimeException());
      }
    }
  }

  private void cancelLocked() {
    if (pending != null) {
      pending.cancel(false);
      pending = null;
    }
    if (current != null) {
      current.cancel(null);
      current = null;
    }
  }

  /** The context of a new call, or null once done. */
  final Context.CancellableContext open() {
    synchronized (lock) {
      if (done) {
        return null;
      }
      pending = null;
      // Detached from the caller's context: its deadline or cancellation must not end the stream.
      Context.CancellableContext ctx = Context.ROOT.withCancellation();
      current = ctx;
      return ctx;
    }
  }

  private void reconnect() {
    // While the channel waits out gRPC's own connection backoff (up to 2 minutes), calls fail at
    // once; let this stream's backoff decide when to try the server again.
    if (channel != null && channel.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
      channel.resetConnectBackoff();
    }
    connect();
  }

  /** One call's observer: a break or end of the call leads to {@link #broke} or {@link #ended}. */
  abstract class Call<T> implements StreamObserver<T> {
    private final Context.CancellableContext ctx;
    private final String endedDescription;

    Call(Context.CancellableContext ctx, String endedDescription) {
      this.ctx = ctx;
      this.endedDescription = endedDescription;
    }

    /** The call is over (before the reconnect logic runs): release what it holds. */
    void closed() {}

    @Override
    public final void onError(Throwable t) {
      closed();
      broke(ctx, t);
    }

    @Override
    public final void onCompleted() {
      closed();
      ended(ctx, endedDescription);
    }
  }

  /** The call of {@code ctx} broke with {@code t}: reconnect if its status is retried, else end. */
  private void broke(Context.CancellableContext ctx, Throwable t) {
    if (done) {
      return;
    }
    release(ctx);
    Status status = Status.fromThrowable(t);
    if (policy.retryOn().contains(status.getCode())) {
      retry(status);
    } else {
      fail(t);
    }
  }

  /** The server ended the call of {@code ctx}: reconnect as after UNAVAILABLE. */
  private void ended(Context.CancellableContext ctx, String description) {
    if (done) {
      return;
    }
    release(ctx);
    retry(Status.UNAVAILABLE.withDescription(description));
  }

  private void release(Context.CancellableContext ctx) {
    synchronized (lock) {
      if (current == ctx) {
        current = null;
      }
    }
    ctx.cancel(null); // frees the context's listeners; the call is already over
  }

  private void retry(Status status) {
    int n = ++attempt;
    if (policy.exhausted(n)) {
      fail(
          status
              .augmentDescription(gaveUp + " after " + policy.maxAttempts() + " reconnects")
              .asRuntimeException());
      return;
    }
    Duration delay = policy.backoff(n, ThreadLocalRandom.current().nextDouble());
    try {
      reconnecting(status, n, delay);
    } catch (Throwable t) {
      fail(t);
      return;
    }
    synchronized (lock) {
      if (done) {
        return;
      }
      try {
        pending = scheduler.schedule(this::reconnect, delay.toNanos(), TimeUnit.NANOSECONDS);
        return;
      } catch (RejectedExecutionException e) {
        // BatonClient was closed: fall through and end the stream.
      }
    }
    fail(Status.CANCELLED.withDescription("BatonClient closed").asRuntimeException());
  }

  /** Ends the stream for good with {@code t} (once; later calls do nothing). */
  final void fail(Throwable t) {
    synchronized (lock) {
      if (done) {
        return;
      }
      done = true;
      cancelLocked();
    }
    try {
      failed(t);
    } catch (Throwable ignored) {
      // nothing left to tell
    }
  }
}
