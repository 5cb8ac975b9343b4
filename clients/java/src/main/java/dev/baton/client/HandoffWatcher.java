package dev.baton.client;

import dev.baton.v1.HandoffChange;
import dev.baton.v1.HandoffChangeType;
import dev.baton.v1.HandoffServiceGrpc;
import dev.baton.v1.WatchHandoffsRequest;
import dev.baton.v1.WatchHandoffsResponse;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ScheduledExecutorService;

/**
 * The engine behind {@link BatonClient#watchHandoffs}: one {@code WatchHandoffs} call at a time;
 * when it breaks with a retryable status or ends, another starts after a jittered exponential
 * backoff with {@code after_position} = the last delivered position (or a later caught-up or
 * heartbeat position). Changes at or below it are dropped, so none is delivered twice.
 *
 * <p>A stream that starts without {@code after_position} begins with a snapshot of the open
 * handoffs, which all carry the snapshot's position and which the server may split across several
 * messages before {@code caught_up}. Everything such a stream sends before {@code caught_up} is
 * held back and delivered only once {@code caught_up} arrives, and the resume point does not move
 * before then: if the stream breaks mid-snapshot, nothing of it was delivered and the next
 * connection asks for a whole new snapshot (resuming after the snapshot's position would skip the
 * open handoffs not yet received).
 */
final class HandoffWatcher extends Reconnects implements HandoffWatch {
  private final HandoffServiceGrpc.HandoffServiceStub stub;
  private final WatchOptions options;
  private final HandoffListener listener;

  private volatile long lastPosition;

  HandoffWatcher(
      HandoffServiceGrpc.HandoffServiceStub stub,
      ManagedChannel channel,
      ScheduledExecutorService scheduler,
      WatchOptions options,
      HandoffListener listener) {
    super(channel, scheduler, options.policy(), "gave up watching handoffs");
    this.stub = stub;
    this.options = options;
    this.listener = listener;
    this.lastPosition = options.afterPosition() == null ? -1 : options.afterPosition();
  }

  void start() {
    connect();
  }

  @Override
  public long lastPosition() {
    return lastPosition;
  }

  WatchHandoffsRequest request() {
    WatchHandoffsRequest.Builder b = WatchHandoffsRequest.newBuilder().setAgentId(options.agentId());
    if (options.operator() != null) {
      b.setOperator(options.operator());
    }
    if (lastPosition >= 0) {
      b.setAfterPosition(lastPosition);
    }
    return b.build();
  }

  @Override
  void connect() {
    Context.CancellableContext ctx = open();
    if (ctx == null) {
      return;
    }
    WatchHandoffsRequest request = request();
    Observer observer = new Observer(ctx, !request.hasAfterPosition());
    try {
      ctx.run(() -> stub.watchHandoffs(request, observer));
    } catch (RuntimeException e) {
      observer.onError(e);
    }
  }

  /** One connection's observer (its callbacks are serial); ignores everything once done. */
  private final class Observer extends Call<WatchHandoffsResponse> {
    // A snapshot stream's changes until its caught_up; null once caught up (or not a snapshot).
    private List<HandoffChange> held;

    Observer(Context.CancellableContext ctx, boolean snapshot) {
      super(ctx, "inbox stream ended by the server");
      this.held = snapshot ? new ArrayList<>() : null;
    }

    @Override
    public void onNext(WatchHandoffsResponse response) {
      if (done) {
        return;
      }
      if (held != null) {
        held.addAll(response.getChangesList());
        if (!response.getCaughtUp()) {
          return; // (a heartbeat before caught_up must not move the resume point either)
        }
        List<HandoffChange> snapshot = held;
        held = null;
        attempt = 0; // progress: the whole snapshot arrived
        if (deliver(snapshot)) {
          caughtUp(response.getCaughtUpPosition());
        }
        return;
      }
      attempt = 0;
      if (!deliver(response.getChangesList())) {
        return;
      }
      if (response.hasHeartbeat()) {
        lastPosition = Math.max(lastPosition, response.getHeartbeat().getPosition());
      }
      if (response.getCaughtUp()) {
        caughtUp(response.getCaughtUpPosition());
      }
    }

    /** Hands the new changes to the listener; false once the watch is done. */
    private boolean deliver(List<HandoffChange> changes) {
      for (HandoffChange change : changes) {
        long position = change.getPosition();
        // Snapshot entries share the snapshot's position; every other change must be new.
        boolean open = change.getType() == HandoffChangeType.HANDOFF_CHANGE_TYPE_OPEN;
        if (open ? position < lastPosition : position <= lastPosition) {
          continue;
        }
        // Advance first: whoever sees the change sees the resume point. Not for snapshot
        // entries: resuming after their position would skip the rest of the snapshot, so the
        // resume point moves past it only with the first later change or caught_up.
        if (!open) {
          lastPosition = position;
        }
        try {
          listener.onChange(change);
        } catch (Throwable t) {
          fail(t);
          return false;
        }
        if (done) {
          return false;
        }
      }
      return true;
    }

    private void caughtUp(long position) {
      lastPosition = Math.max(lastPosition, position);
      try {
        listener.onCaughtUp(position);
      } catch (Throwable t) {
        fail(t);
      }
    }
  }

  @Override
  void reconnecting(Status status, int attempt, Duration delay) {
    listener.onReconnecting(status, attempt, delay, lastPosition);
  }

  @Override
  void failed(Throwable t) {
    listener.onError(t);
  }
}
