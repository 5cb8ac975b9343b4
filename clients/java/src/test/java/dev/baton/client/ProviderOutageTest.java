package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.baton.v1.Event;
import dev.baton.v1.EventServiceGrpc;
import dev.baton.v1.GetHandoffRequest;
import dev.baton.v1.GetHandoffResponse;
import dev.baton.v1.Handoff;
import dev.baton.v1.HandoffChange;
import dev.baton.v1.HandoffChangeType;
import dev.baton.v1.HandoffServiceGrpc;
import dev.baton.v1.ListEventsRequest;
import dev.baton.v1.ListEventsResponse;
import dev.baton.v1.WatchHandoffsRequest;
import dev.baton.v1.WatchHandoffsResponse;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A token provider that fails with a gRPC status (e.g. IssueCustomerToken while the server
 * restarts) fails the call with that status, so follow and watchHandoffs reconnect on UNAVAILABLE
 * instead of giving up on UNAUTHENTICATED.
 */
class ProviderOutageTest {
  private static final Duration WAIT = Duration.ofSeconds(5);
  private final List<String> seen = new CopyOnWriteArrayList<>(); // "method auth" per call reaching the server
  private final AtomicInteger fetches = new AtomicInteger();
  private Server server;
  private String name;

  @BeforeEach
  void setUp() throws Exception {
    name = InProcessServerBuilder.generateName();
    ServerInterceptor capture =
        new ServerInterceptor() {
          @Override
          public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
            seen.add(call.getMethodDescriptor().getBareMethodName() + " " + headers.get(BatonCredentials.AUTHORIZATION));
            return next.startCall(call, headers);
          }
        };
    EventServiceGrpc.EventServiceImplBase events =
        new EventServiceGrpc.EventServiceImplBase() {
          @Override
          public void listEvents(ListEventsRequest request, StreamObserver<ListEventsResponse> out) {
            out.onNext(
                ListEventsResponse.newBuilder()
                    .addEvents(Event.newBuilder().setId("evt_0").setSessionId(request.getSessionId()).setOffset(0))
                    .build());
            out.onNext(ListEventsResponse.newBuilder().setCaughtUp(true).build());
          }
        };
    HandoffServiceGrpc.HandoffServiceImplBase handoffs =
        new HandoffServiceGrpc.HandoffServiceImplBase() {
          @Override
          public void getHandoff(GetHandoffRequest request, StreamObserver<GetHandoffResponse> out) {
            out.onNext(GetHandoffResponse.newBuilder().setHandoff(Handoff.newBuilder().setId(request.getHandoffId())).build());
            out.onCompleted();
          }

          @Override
          public void watchHandoffs(WatchHandoffsRequest request, StreamObserver<WatchHandoffsResponse> out) {
            out.onNext(
                WatchHandoffsResponse.newBuilder()
                    .addChanges(
                        HandoffChange.newBuilder()
                            .setPosition(3)
                            .setType(HandoffChangeType.HANDOFF_CHANGE_TYPE_OPEN)
                            .setHandoff(Handoff.newBuilder().setId("hof_1")))
                    .build());
            out.onNext(WatchHandoffsResponse.newBuilder().setCaughtUp(true).setCaughtUpPosition(3).build());
          }
        };
    server =
        InProcessServerBuilder.forName(name)
            .directExecutor()
            .addService(ServerInterceptors.intercept(events, capture))
            .addService(ServerInterceptors.intercept(handoffs, capture))
            .build()
            .start();
  }

  @AfterEach
  void tearDown() {
    server.shutdownNow();
  }

  /** A provider whose first {@code failures} fetches throw {@code error}, then returns "good". */
  private TokenProvider provider(int failures, Exception error) {
    return () -> {
      if (fetches.incrementAndGet() <= failures) {
        throw error;
      }
      return AccessToken.of("good", Instant.now().plus(Duration.ofHours(1)));
    };
  }

  private BatonClient client(TokenProvider provider) {
    return BatonClient.builder(InProcessChannelBuilder.forName(name).directExecutor())
        .credentials(BatonCredentials.fromProvider(provider))
        .retryAttempts(1) // no channel-level retries: the status of one attempt is asserted
        .build();
  }

  private static GetHandoffRequest get() {
    return GetHandoffRequest.newBuilder().setHandoffId("hof_1").build();
  }

  private static StatusRuntimeException unavailable() {
    return Status.UNAVAILABLE.withDescription("token service restarting").asRuntimeException();
  }

  @Test
  void unaryCallFailsWithTheProvidersStatusAndCause() {
    StatusRuntimeException thrown = unavailable();
    try (BatonClient c = client(provider(1, thrown))) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> c.handoffs().getHandoff(get()));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
      assertTrue(e.getStatus().getDescription().contains("token service restarting"), e.getStatus().getDescription());
      assertSame(thrown, e.getStatus().getCause());
      assertEquals("hof_1", c.handoffs().getHandoff(get()).getHandoff().getId()); // the next call asks again
    }
    assertEquals(2, fetches.get());
    assertEquals(List.of("GetHandoff Bearer good"), seen);
  }

  @Test
  void aStatusWrappedInAnotherExceptionIsFoundToo() {
    try (BatonClient c = client(provider(1, new ExecutionException(unavailable())))) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> c.handoffs().getHandoff(get()));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
      assertNotNull(e.getStatus().getCause());
    }
  }

  @Test
  void followReconnectsWhileTheProviderIsUnavailable() throws Exception {
    FollowOptions fast = FollowOptions.builder().initialBackoff(Duration.ofMillis(5)).maxBackoff(Duration.ofMillis(20)).build();
    try (BatonClient c = client(provider(3, unavailable()));
        EventStream stream = c.follow("ses_1", 0, fast)) {
      Event e = stream.poll(WAIT);
      assertNotNull(e, "the follow gave up or delivered nothing");
      assertEquals(0, e.getOffset());
      assertTrue(stream.awaitCaughtUp(WAIT));
    }
    assertEquals(4, fetches.get());
    assertEquals(List.of("ListEvents Bearer good"), seen);
  }

  @Test
  void watchHandoffsReconnectsWhileTheProviderIsUnavailable() throws Exception {
    WatchOptions fast = WatchOptions.builder().initialBackoff(Duration.ofMillis(5)).maxBackoff(Duration.ofMillis(20)).build();
    try (BatonClient c = client(provider(3, unavailable()));
        HandoffStream stream = c.watchHandoffs(fast)) {
      HandoffChange change = stream.poll(WAIT);
      assertNotNull(change, "the watch gave up or delivered nothing");
      assertEquals("hof_1", change.getHandoff().getId());
      assertTrue(stream.awaitCaughtUp(WAIT));
    }
    assertEquals(4, fetches.get());
    assertEquals(List.of("WatchHandoffs Bearer good"), seen);
  }
}
