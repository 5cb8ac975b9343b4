package dev.baton.client;

import dev.baton.v1.EventServiceGrpc;
import dev.baton.v1.Event;
import dev.baton.v1.ListEventsRequest;
import dev.baton.v1.ListEventsResponse;
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
 * The engine behind {@link BatonClient#follow}: one {@code ListEvents(follow=true)} call at a
 * time; when it breaks with a retryable status or ends, another one starts after a jittered
 * exponential backoff with {@code min_offset} = last delivered offset + 1 (or a later heartbeat
 * {@code next_offset}). Offsets below the resume point are dropped, so nothing is delivered twice.
 *
 * <p>Callbacks of one call are serial and a new call starts only after the previous one ended,
 * so listener callbacks never overlap.
 */
final class Follower implements Subscription {
  private final EventServiceGrpc.EventServiceStub stub;
  private final ManagedChannel channel; // null when unknown
  private final ScheduledExecutorService scheduler;
  private final String sessionId;
  private final FollowOptions options;
  private final FollowListener listener;

  private final Object lock = new Object();
  private volatile long nextOffset;
  private volatile boolean done;
  private volatile int attempt;
  private Context.CancellableContext current; // guarded by lock
  private ScheduledFuture<?> pending; // guarded by lock

  Follower(
      EventServiceGrpc.EventServiceStub stub,
      ManagedChannel channel,
      ScheduledExecutorService scheduler,
      String sessionId,
      long fromOffset,
      FollowOptions options,
      FollowListener listener) {
    if (fromOffset < 0) {
      throw new IllegalArgumentException("fromOffset must not be negative");
    }
    this.stub = stub;
    this.channel = channel;
    this.scheduler = scheduler;
    this.sessionId = sessionId;
    this.nextOffset = fromOffset;
    this.options = options;
    this.listener = listener;
  }

  void start() {
    connect();
  }

  @Override
  public long nextOffset() {
    return nextOffset;
  }

  @Override
  public boolean isDone() {
    return done;
  }

  @Override
  public void close() {
    synchronized (lock) {
      if (done) {
        return;
      }
      done = true;
      cancelLocked();
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

  private void reconnect() {
    // While the channel waits out gRPC's own connection backoff (up to 2 minutes), calls fail at
    // once; let this subscription's backoff decide when to try the server again.
    if (channel != null && channel.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
      channel.resetConnectBackoff();
    }
    connect();
  }

  private void connect() {
    Context.CancellableContext ctx;
    synchronized (lock) {
      if (done) {
        return;
      }
      pending = null;
      // Detached from the caller's context: its deadline or cancellation must not end the follow.
      ctx = Context.ROOT.withCancellation();
      current = ctx;
    }
    ListEventsRequest request =
        ListEventsRequest.newBuilder()
            .setSessionId(sessionId)
            .setMinOffset(nextOffset)
            .setFollow(true)
            .addAllKinds(options.kinds())
            .addAllSources(options.sources())
            .build();
    Observer observer = new Observer(ctx);
    try {
      ctx.run(() -> stub.listEvents(request, observer));
    } catch (RuntimeException e) {
      observer.onError(e);
    }
  }

  /** One connection's observer; ignores everything once the subscription is done. */
  private final class Observer implements StreamObserver<ListEventsResponse> {
    private final Context.CancellableContext ctx;

    Observer(Context.CancellableContext ctx) {
      this.ctx = ctx;
    }

    @Override
    public void onNext(ListEventsResponse response) {
      if (done) {
        return;
      }
      attempt = 0;
      for (Event event : response.getEventsList()) {
        if (event.getOffset() < nextOffset) {
          continue; // already delivered before a reconnect
        }
        // Advance before handing the event over: whoever sees it also sees the new resume point.
        nextOffset = event.getOffset() + 1;
        try {
          listener.onEvent(event);
        } catch (Throwable t) {
          fail(t);
          return;
        }
        if (done) {
          return;
        }
      }
      if (response.hasHeartbeat()) {
        // Every offset below it was delivered on this stream or skipped by the filters.
        nextOffset = Math.max(nextOffset, response.getHeartbeat().getNextOffset());
      }
      if (response.getCaughtUp()) {
        try {
          listener.onCaughtUp();
        } catch (Throwable t) {
          fail(t);
        }
      }
    }

    @Override
    public void onError(Throwable t) {
      if (done) {
        return;
      }
      release(ctx);
      Status status = Status.fromThrowable(t);
      if (options.retryOn().contains(status.getCode())) {
        retry(status);
      } else {
        fail(t);
      }
    }

    @Override
    public void onCompleted() {
      if (done) {
        return;
      }
      release(ctx);
      retry(Status.UNAVAILABLE.withDescription("follow stream ended by the server"));
    }
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
    if (options.maxAttempts() > 0 && n > options.maxAttempts()) {
      fail(
          status
              .augmentDescription("gave up following after " + options.maxAttempts() + " reconnects")
              .asRuntimeException());
      return;
    }
    Duration delay = options.backoff(n, ThreadLocalRandom.current().nextDouble());
    try {
      listener.onReconnecting(status, n, delay, nextOffset);
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
        // BatonClient was closed: fall through and end the subscription.
      }
    }
    fail(Status.CANCELLED.withDescription("BatonClient closed").asRuntimeException());
  }

  private void fail(Throwable t) {
    synchronized (lock) {
      if (done) {
        return;
      }
      done = true;
      cancelLocked();
    }
    try {
      listener.onError(t);
    } catch (Throwable ignored) {
      // nothing left to tell
    }
  }
}
