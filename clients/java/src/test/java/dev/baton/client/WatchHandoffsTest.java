package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.baton.v1.Handoff;
import dev.baton.v1.HandoffChange;
import dev.baton.v1.HandoffChangeType;
import dev.baton.v1.HandoffServiceGrpc;
import dev.baton.v1.Participant;
import dev.baton.v1.WatchHandoffsHeartbeat;
import dev.baton.v1.WatchHandoffsRequest;
import dev.baton.v1.WatchHandoffsResponse;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The inbox watch helper against a scripted in-process HandoffService. */
class WatchHandoffsTest {
  private static WatchOptions.Builder fast() {
    return WatchOptions.builder().initialBackoff(Duration.ofMillis(5)).maxBackoff(Duration.ofMillis(20));
  }
  private static final Duration WAIT = Duration.ofSeconds(5);

  private final ConcurrentLinkedQueue<BiConsumer<WatchHandoffsRequest, StreamObserver<WatchHandoffsResponse>>> scripts =
      new ConcurrentLinkedQueue<>();
  private final List<WatchHandoffsRequest> requests = new CopyOnWriteArrayList<>();
  private Server server;
  private BatonClient baton;

  @BeforeEach
  void setUp() throws Exception {
    String name = InProcessServerBuilder.generateName();
    server =
        InProcessServerBuilder.forName(name)
            .directExecutor()
            .addService(
                new HandoffServiceGrpc.HandoffServiceImplBase() {
                  @Override
                  public void watchHandoffs(WatchHandoffsRequest request, StreamObserver<WatchHandoffsResponse> out) {
                    requests.add(request);
                    var script = scripts.poll();
                    if (script != null) {
                      script.accept(request, out);
                    }
                  }
                })
            .build()
            .start();
    ManagedChannel channel = InProcessChannelBuilder.forName(name).directExecutor().build();
    baton = BatonClient.wrap(channel, true);
  }

  @AfterEach
  void tearDown() {
    baton.close();
    server.shutdownNow();
  }

  private static HandoffChange change(long position, HandoffChangeType type, String handoffId) {
    return HandoffChange.newBuilder()
        .setPosition(position)
        .setType(type)
        .setHandoff(Handoff.newBuilder().setId(handoffId).setSessionId("ses_1"))
        .build();
  }

  private static WatchHandoffsResponse changes(HandoffChange... cs) {
    return WatchHandoffsResponse.newBuilder().addAllChanges(List.of(cs)).build();
  }

  private static WatchHandoffsResponse caughtUp(long position) {
    return WatchHandoffsResponse.newBuilder().setCaughtUp(true).setCaughtUpPosition(position).build();
  }

  private static List<String> take(HandoffStream stream, int n) throws InterruptedException {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      HandoffChange c = stream.poll(WAIT);
      if (c == null) {
        break;
      }
      out.add(c.getPosition() + ":" + c.getHandoff().getId());
    }
    return out;
  }

  @Test
  void snapshotThenLiveThenResumesAfterTheLastPosition() throws Exception {
    var open = HandoffChangeType.HANDOFF_CHANGE_TYPE_OPEN;
    var requested = HandoffChangeType.HANDOFF_CHANGE_TYPE_REQUESTED;
    var claimed = HandoffChangeType.HANDOFF_CHANGE_TYPE_CLAIMED;
    scripts.add(
        (req, out) -> {
          out.onNext(changes(change(10, open, "hof_a"), change(10, open, "hof_b")));
          out.onNext(caughtUp(10));
          out.onNext(changes(change(11, requested, "hof_c")));
          out.onError(Status.UNAVAILABLE.withDescription("server shutting down").asRuntimeException());
        });
    scripts.add(
        (req, out) -> {
          out.onNext(changes(change(11, requested, "hof_c"), change(12, claimed, "hof_a"))); // 11 resent
          out.onNext(caughtUp(12));
          out.onNext(changes(change(13, claimed, "hof_b")));
        });
    Participant olga = Participant.newBuilder().setId("olga").setDisplayName("Olga").build();
    try (HandoffStream stream = baton.watchHandoffs(fast().operator(olga).agentId("agt_1").build())) {
      assertEquals(List.of("10:hof_a", "10:hof_b", "11:hof_c", "12:hof_a", "13:hof_b"), take(stream, 5));
      assertTrue(stream.awaitCaughtUp(WAIT));
      assertEquals(13, stream.lastPosition());
    }
    assertEquals(2, requests.size());
    assertFalse(requests.get(0).hasAfterPosition());
    assertEquals("olga", requests.get(0).getOperator().getId());
    assertEquals("agt_1", requests.get(0).getAgentId());
    assertEquals(11, requests.get(1).getAfterPosition());
    assertEquals("olga", requests.get(1).getOperator().getId());
  }

  /**
   * A server like Baton's: without after_position a snapshot (split across messages, the way the
   * server keeps responses under its size limit), then caught_up; with after_position only the
   * changes after it. The first stream breaks after the first snapshot message.
   */
  @Test
  void streamBrokenMidSnapshotAsksForANewSnapshotAndLosesNothing() throws Exception {
    var open = HandoffChangeType.HANDOFF_CHANGE_TYPE_OPEN;
    var requested = HandoffChangeType.HANDOFF_CHANGE_TYPE_REQUESTED;
    var claimed = HandoffChangeType.HANDOFF_CHANGE_TYPE_CLAIMED;
    BiConsumer<WatchHandoffsRequest, StreamObserver<WatchHandoffsResponse>> serverLike =
        (req, out) -> {
          if (req.hasAfterPosition()) { // replay: the snapshot's open handoffs are not sent again
            if (req.getAfterPosition() < 11) {
              out.onNext(changes(change(11, requested, "hof_d")));
            }
            out.onNext(caughtUp(11));
            out.onNext(changes(change(12, claimed, "hof_a")));
            return;
          }
          out.onNext(changes(change(10, open, "hof_a"), change(10, open, "hof_b")));
          out.onNext(changes(change(10, open, "hof_c")));
          out.onNext(changes(change(11, requested, "hof_d"))); // committed after the snapshot
          out.onNext(caughtUp(11));
          out.onNext(changes(change(12, claimed, "hof_a")));
        };
    scripts.add(
        (req, out) -> {
          out.onNext(changes(change(10, open, "hof_a"), change(10, open, "hof_b")));
          out.onError(Status.UNAVAILABLE.withDescription("connection reset").asRuntimeException());
        });
    scripts.add(serverLike);
    List<Long> reconnectPositions = new CopyOnWriteArrayList<>();
    HandoffStream stream = new HandoffStream(100);
    HandoffListener inner = stream.listener();
    HandoffWatch watch =
        baton.watchHandoffs(
            fast().build(),
            new HandoffListener() {
              @Override
              public void onChange(HandoffChange change) {
                inner.onChange(change);
              }

              @Override
              public void onCaughtUp(long position) {
                inner.onCaughtUp(position);
              }

              @Override
              public void onReconnecting(Status status, int attempt, Duration delay, long afterPosition) {
                reconnectPositions.add(afterPosition);
              }

              @Override
              public void onError(Throwable error) {
                inner.onError(error);
              }
            });
    stream.attach(watch);
    try (stream) {
      assertEquals(List.of("10:hof_a", "10:hof_b", "10:hof_c", "11:hof_d", "12:hof_a"), take(stream, 5));
      assertNull(stream.poll(Duration.ofMillis(100)), "nothing delivered twice");
      assertEquals(12, stream.lastPosition());
    }
    assertEquals(List.of(-1L), reconnectPositions); // nothing of the broken snapshot counted
    assertEquals(2, requests.size());
    assertFalse(requests.get(0).hasAfterPosition());
    assertFalse(requests.get(1).hasAfterPosition(), "a fresh snapshot, not after_position=10");
  }

  @Test
  void caughtUpAndHeartbeatMoveTheResumePoint() throws Exception {
    scripts.add(
        (req, out) -> {
          out.onNext(caughtUp(40)); // no open handoffs: nothing delivered, but position 40 is known
          out.onNext(WatchHandoffsResponse.newBuilder().setHeartbeat(WatchHandoffsHeartbeat.newBuilder().setPosition(45)).build());
          out.onCompleted(); // a watch should not end: reconnect
        });
    scripts.add((req, out) -> out.onNext(changes(change(46, HandoffChangeType.HANDOFF_CHANGE_TYPE_REQUESTED, "hof_x"))));
    try (HandoffStream stream = baton.watchHandoffs(fast().build())) {
      assertEquals(List.of("46:hof_x"), take(stream, 1));
    }
    assertEquals(45, requests.get(1).getAfterPosition());
  }

  @Test
  void startsAfterAGivenPosition() throws Exception {
    scripts.add((req, out) -> out.onNext(changes(change(7, HandoffChangeType.HANDOFF_CHANGE_TYPE_ENDED, "hof_1"))));
    try (HandoffStream stream = baton.watchHandoffs(fast().afterPosition(6).build())) {
      assertEquals(List.of("7:hof_1"), take(stream, 1));
    }
    assertEquals(6, requests.get(0).getAfterPosition());
  }

  @Test
  void nonRetryableErrorEndsTheWatch() throws Exception {
    scripts.add((req, out) -> out.onError(Status.PERMISSION_DENIED.withDescription("not your operator id").asRuntimeException()));
    try (HandoffStream stream = baton.watchHandoffs(fast().build())) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, stream::hasNext);
      assertEquals(Status.Code.PERMISSION_DENIED, e.getStatus().getCode());
    }
    assertEquals(1, requests.size());
  }

  @Test
  void backoffIsExponentialCappedAndJittered() {
    WatchOptions o =
        WatchOptions.builder().initialBackoff(Duration.ofMillis(200)).maxBackoff(Duration.ofSeconds(2)).multiplier(3).jitter(0.5).build();
    assertEquals(Duration.ofMillis(200), o.backoff(1, 0.0));
    assertEquals(Duration.ofMillis(100), o.backoff(1, 1.0));
    assertEquals(Duration.ofMillis(1800), o.backoff(3, 0.0));
    assertEquals(Duration.ofSeconds(2), o.backoff(4, 0.0));
    assertEquals(Duration.ofSeconds(1), o.backoff(9, 1.0));
    for (int i = 0; i < 100; i++) {
      Duration d = o.backoff(2, Math.random());
      assertTrue(d.compareTo(Duration.ofMillis(300)) >= 0 && d.compareTo(Duration.ofMillis(600)) <= 0, d.toString());
    }
    assertThrows(IllegalArgumentException.class, () -> WatchOptions.builder().jitter(1.5));
    assertThrows(IllegalArgumentException.class, () -> WatchOptions.builder().afterPosition(-1));
  }
}
