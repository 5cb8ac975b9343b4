package dev.baton.client;

import dev.baton.v1.EventServiceGrpc;
import dev.baton.v1.Event;
import dev.baton.v1.ListEventsRequest;
import dev.baton.v1.ListEventsResponse;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.time.Duration;
import java.util.concurrent.ScheduledExecutorService;

/**
 * The engine behind {@link BatonClient#follow}: one {@code ListEvents(follow=true)} call at a
 * time; when it breaks with a retryable status or ends, another one starts after a jittered
 * exponential backoff with {@code min_offset} = last delivered offset + 1 (or a later heartbeat
 * {@code next_offset}). Offsets below the resume point are dropped, so nothing is delivered twice.
 *
 * <p>Callbacks of one call are serial and a new call starts only after the previous one ended,
 * so listener callbacks never overlap.
 */
final class Follower extends Reconnects implements Subscription {
  private final EventServiceGrpc.EventServiceStub stub;
  private final String sessionId;
  private final FollowOptions options;
  private final FollowListener listener;

  private volatile long nextOffset;

  Follower(
      EventServiceGrpc.EventServiceStub stub,
      ManagedChannel channel,
      ScheduledExecutorService scheduler,
      String sessionId,
      long fromOffset,
      FollowOptions options,
      FollowListener listener) {
    super(channel, scheduler, options.policy(), "gave up following");
    if (fromOffset < 0) {
      throw new IllegalArgumentException("fromOffset must not be negative");
    }
    this.stub = stub;
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
  void connect() {
    Context.CancellableContext ctx = open();
    if (ctx == null) {
      return;
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
  private final class Observer extends Call<ListEventsResponse> {

    Observer(Context.CancellableContext ctx) {
      super(ctx, "follow stream ended by the server");
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
  }

  @Override
  void reconnecting(Status status, int attempt, Duration delay) {
    listener.onReconnecting(status, attempt, delay, nextOffset);
  }

  @Override
  void failed(Throwable t) {
    listener.onError(t);
  }
}
