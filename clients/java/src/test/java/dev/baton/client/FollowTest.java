package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.baton.v1.EventServiceGrpc;
import dev.baton.v1.Event;
import dev.baton.v1.ListEventsHeartbeat;
import dev.baton.v1.ListEventsRequest;
import dev.baton.v1.ListEventsResponse;
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
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The follow helper against a scripted in-process EventService. */
class FollowTest {
  private static final FollowOptions FAST =
      FollowOptions.builder().initialBackoff(Duration.ofMillis(5)).maxBackoff(Duration.ofMillis(20)).build();
  private static final Duration WAIT = Duration.ofSeconds(5);

  /** One script per ListEvents call, in order; a call past the scripts stays open and idle. */
  private final ConcurrentLinkedQueue<BiConsumer<ListEventsRequest, StreamObserver<ListEventsResponse>>> scripts =
      new ConcurrentLinkedQueue<>();
  private final List<ListEventsRequest> requests = new CopyOnWriteArrayList<>();
  private Server server;
  private BatonClient baton;

  @BeforeEach
  void setUp() throws Exception {
    String name = InProcessServerBuilder.generateName();
    server =
        InProcessServerBuilder.forName(name)
            .directExecutor()
            .addService(
                new EventServiceGrpc.EventServiceImplBase() {
                  @Override
                  public void listEvents(ListEventsRequest request, StreamObserver<ListEventsResponse> out) {
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

  private static Event event(long offset) {
    return Event.newBuilder().setId("evt_" + offset).setSessionId("ses_1").setOffset(offset).build();
  }

  private static ListEventsResponse events(long... offsets) {
    ListEventsResponse.Builder b = ListEventsResponse.newBuilder();
    for (long o : offsets) {
      b.addEvents(event(o));
    }
    return b.build();
  }

  private static List<Long> take(EventStream stream, int n) throws InterruptedException {
    List<Long> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      Event e = stream.poll(WAIT);
      if (e == null) {
        break;
      }
      out.add(e.getOffset());
    }
    return out;
  }

  @Test
  void resumesAfterUnavailableWithoutDuplicates() throws Exception {
    scripts.add(
        (req, out) -> {
          out.onNext(events(0, 1));
          out.onNext(ListEventsResponse.newBuilder().setCaughtUp(true).build());
          out.onNext(events(2));
          out.onError(Status.UNAVAILABLE.withDescription("shutting down").asRuntimeException());
        });
    scripts.add(
        (req, out) -> {
          out.onNext(events(1, 2, 3)); // a server that resends what we already have
          out.onNext(ListEventsResponse.newBuilder().setCaughtUp(true).build());
          out.onNext(events(4));
        });
    try (EventStream stream = baton.follow("ses_1", 0, FAST)) {
      assertEquals(List.of(0L, 1L, 2L, 3L, 4L), take(stream, 5));
      assertTrue(stream.awaitCaughtUp(WAIT));
      assertEquals(5, stream.nextOffset());
    }
    assertEquals(2, requests.size());
    assertEquals(0, requests.get(0).getMinOffset());
    assertEquals(3, requests.get(1).getMinOffset());
    assertTrue(requests.get(1).getFollow());
  }

  @Test
  void reconnectsWhenTheServerEndsTheStream() throws Exception {
    scripts.add(
        (req, out) -> {
          out.onNext(events(5));
          out.onCompleted();
        });
    scripts.add((req, out) -> out.onNext(events(6)));
    try (EventStream stream = baton.follow("ses_1", 5, FAST)) {
      assertEquals(List.of(5L, 6L), take(stream, 2));
    }
    assertEquals(List.of(5L, 6L), requests.stream().map(ListEventsRequest::getMinOffset).toList());
  }

  @Test
  void heartbeatMovesTheResumePoint() throws Exception {
    scripts.add(
        (req, out) -> {
          out.onNext(events(0));
          out.onNext(
              ListEventsResponse.newBuilder()
                  .setHeartbeat(ListEventsHeartbeat.newBuilder().setNextOffset(7))
                  .build());
          out.onError(Status.UNAVAILABLE.asRuntimeException());
        });
    scripts.add((req, out) -> out.onNext(events(7)));
    try (EventStream stream = baton.follow("ses_1", 0, FAST)) {
      assertEquals(List.of(0L, 7L), take(stream, 2));
    }
    assertEquals(7, requests.get(1).getMinOffset());
  }

  @Test
  void nonRetryableErrorEndsTheStreamAfterBufferedEvents() throws Exception {
    scripts.add(
        (req, out) -> {
          out.onNext(events(0));
          out.onError(Status.NOT_FOUND.withDescription("session 'ses_1' does not exist").asRuntimeException());
        });
    try (EventStream stream = baton.follow("ses_1", 0, FAST)) {
      assertTrue(stream.hasNext());
      assertEquals(0, stream.next().getOffset());
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, stream::hasNext);
      assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
    }
    assertEquals(1, requests.size());
  }

  @Test
  void givesUpAfterMaxAttempts() throws Exception {
    for (int i = 0; i < 10; i++) {
      scripts.add((req, out) -> out.onError(Status.UNAVAILABLE.asRuntimeException()));
    }
    CountDownLatch failed = new CountDownLatch(1);
    List<Integer> attempts = new CopyOnWriteArrayList<>();
    Subscription sub =
        baton.follow(
            "ses_1",
            0,
            FollowOptions.builder()
                .initialBackoff(Duration.ofMillis(1))
                .maxBackoff(Duration.ofMillis(2))
                .maxAttempts(3)
                .build(),
            new FollowListener() {
              @Override
              public void onEvent(Event event) {}

              @Override
              public void onReconnecting(Status status, int attempt, Duration delay, long nextOffset) {
                attempts.add(attempt);
              }

              @Override
              public void onError(Throwable error) {
                failed.countDown();
              }
            });
    assertTrue(failed.await(5, TimeUnit.SECONDS));
    assertTrue(sub.isDone());
    assertEquals(List.of(1, 2, 3), attempts);
    assertEquals(4, requests.size());
  }

  @Test
  void closeCancelsTheStream() throws Exception {
    CountDownLatch cancelled = new CountDownLatch(1);
    scripts.add(
        (req, out) -> {
          ((io.grpc.stub.ServerCallStreamObserver<ListEventsResponse>) out).setOnCancelHandler(cancelled::countDown);
          out.onNext(events(0));
        });
    EventStream stream = baton.follow("ses_1", 0, FAST);
    assertEquals(0, stream.poll(WAIT).getOffset());
    stream.close();
    assertTrue(cancelled.await(5, TimeUnit.SECONDS));
    assertFalse(stream.hasNext());
    assertNull(stream.poll(Duration.ofMillis(10)));
  }

  @Test
  void backoffIsExponentialCappedAndJittered() {
    FollowOptions o =
        FollowOptions.builder()
            .initialBackoff(Duration.ofMillis(100))
            .maxBackoff(Duration.ofSeconds(1))
            .jitter(0.5)
            .build();
    assertEquals(Duration.ofMillis(100), o.backoff(1, 0.0));
    assertEquals(Duration.ofMillis(50), o.backoff(1, 1.0));
    assertEquals(Duration.ofMillis(400), o.backoff(3, 0.0));
    assertEquals(Duration.ofSeconds(1), o.backoff(10, 0.0));
    assertEquals(Duration.ofMillis(500), o.backoff(10, 1.0));
  }
}
