package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.baton.v1.CreateEventRequest;
import dev.baton.v1.CreateEventResponse;
import dev.baton.v1.CreateSessionRequest;
import dev.baton.v1.CreateSessionResponse;
import dev.baton.v1.Event;
import dev.baton.v1.EventServiceGrpc;
import dev.baton.v1.GetSessionRequest;
import dev.baton.v1.GetSessionResponse;
import dev.baton.v1.Session;
import dev.baton.v1.SessionServiceGrpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Builder defaults, the retry policy against a flaky in-process server, idempotency keys. */
class ClientOptionsTest {
  private final AtomicInteger failFirst = new AtomicInteger();
  private final List<String> calls = new CopyOnWriteArrayList<>();
  private final List<String> keys = new CopyOnWriteArrayList<>();
  private Server server;
  private String name;

  /** Fails the first {@link #failFirst} calls of any method with UNAVAILABLE. */
  private boolean flaky(String method, StreamObserver<?> out) {
    calls.add(method);
    if (failFirst.getAndDecrement() > 0) {
      out.onError(Status.UNAVAILABLE.withDescription("server restarting").asRuntimeException());
      return true;
    }
    return false;
  }

  @BeforeEach
  void setUp() throws Exception {
    name = InProcessServerBuilder.generateName();
    server =
        InProcessServerBuilder.forName(name)
            .directExecutor()
            .addService(
                new SessionServiceGrpc.SessionServiceImplBase() {
                  @Override
                  public void getSession(GetSessionRequest r, StreamObserver<GetSessionResponse> out) {
                    if (!flaky("GetSession", out)) {
                      out.onNext(GetSessionResponse.newBuilder().setSession(Session.newBuilder().setId(r.getSessionId())).build());
                      out.onCompleted();
                    }
                  }

                  @Override
                  public void createSession(CreateSessionRequest r, StreamObserver<CreateSessionResponse> out) {
                    if (!flaky("CreateSession", out)) {
                      out.onNext(CreateSessionResponse.getDefaultInstance());
                      out.onCompleted();
                    }
                  }
                })
            .addService(
                new EventServiceGrpc.EventServiceImplBase() {
                  @Override
                  public void createEvent(CreateEventRequest r, StreamObserver<CreateEventResponse> out) {
                    keys.add(r.getIdempotencyKey());
                    if (!flaky("CreateEvent", out)) {
                      out.onNext(CreateEventResponse.newBuilder().setEvent(Event.newBuilder().setId("evt_1")).build());
                      out.onCompleted();
                    }
                  }
                })
            .build()
            .start();
  }

  @AfterEach
  void tearDown() {
    server.shutdownNow();
  }

  private BatonClient.Builder builder() {
    return BatonClient.builder(InProcessChannelBuilder.forName(name).directExecutor());
  }

  private static CreateEventRequest message(String key) {
    return CreateEventRequest.newBuilder().setSessionId("ses_1").setIdempotencyKey(key).build();
  }

  @Test
  void keepaliveDefaultsSuitTheServer() {
    BatonClient.Builder b = BatonClient.builder("127.0.0.1:1");
    assertEquals(Duration.ofSeconds(30), b.keepAliveTime());
    assertEquals(Duration.ofSeconds(10), b.keepAliveTimeout());
    assertTrue(b.keepAliveWithoutCalls());
    assertThrows(IllegalArgumentException.class, () -> b.keepAlive(Duration.ofSeconds(5), Duration.ofSeconds(5), true));
    b.keepAlive(Duration.ofSeconds(60), Duration.ofSeconds(20), false);
    assertEquals(Duration.ofSeconds(60), b.keepAliveTime());
    assertFalse(b.keepAliveWithoutCalls());
    assertNull(b.noKeepAlive().keepAliveTime());
  }

  @Test
  void tlsByDefaultPlaintextOnRequest() {
    assertTrue(BatonClient.builder("h:1").channelCredentials() instanceof TlsChannelCredentials);
    assertTrue(BatonClient.builder("h:1").plaintext().channelCredentials() instanceof InsecureChannelCredentials);
    assertThrows(IllegalArgumentException.class, () -> BatonClient.builder("h:1").tlsCa("not a certificate".getBytes()));
  }

  @Test
  @SuppressWarnings("unchecked")
  void retryConfigNamesOnlySafeMethods() {
    Map<String, Object> mc = ((List<Map<String, Object>>) BatonClient.retryServiceConfig().get("methodConfig")).get(0);
    List<Map<String, String>> names = (List<Map<String, String>>) mc.get("name");
    assertTrue(names.contains(Map.of("service", "baton.v1.EventService", "method", "CreateEvent")));
    assertTrue(names.contains(Map.of("service", "baton.v1.SessionService", "method", "GetSession")));
    assertFalse(names.stream().anyMatch(n -> n.get("method").startsWith("Delete") || n.get("method").startsWith("Update")));
    assertFalse(names.contains(Map.of("service", "baton.v1.HandoffService", "method", "ClaimHandoff")));
    Map<String, Object> policy = (Map<String, Object>) mc.get("retryPolicy");
    assertEquals(5.0, policy.get("maxAttempts"));
    assertEquals(List.of("UNAVAILABLE"), policy.get("retryableStatusCodes"));

    Map<String, Object> without =
        ((List<Map<String, Object>>) BatonClient.builder("h:1").idempotencyKeys(false).retryConfig().get("methodConfig")).get(0);
    assertFalse(((List<Map<String, String>>) without.get("name")).stream().anyMatch(n -> n.get("method").equals("CreateEvent")));
  }

  @Test
  void safeReadsAreRetriedOnUnavailable() {
    failFirst.set(2);
    try (BatonClient c = builder().build()) {
      assertEquals("ses_1", c.sessions().getSession(GetSessionRequest.newBuilder().setSessionId("ses_1").build()).getSession().getId());
    }
    assertEquals(List.of("GetSession", "GetSession", "GetSession"), calls);
  }

  @Test
  void createsAreNotRetried() {
    failFirst.set(1);
    try (BatonClient c = builder().build()) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> c.sessions().createSession(CreateSessionRequest.getDefaultInstance()));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    }
    assertEquals(List.of("CreateSession"), calls);
  }

  @Test
  void retriesGiveUpAfterMaxAttempts() {
    failFirst.set(100);
    try (BatonClient c = builder().retryAttempts(3).build()) {
      assertThrows(StatusRuntimeException.class, () -> c.sessions().getSession(GetSessionRequest.getDefaultInstance()));
    }
    assertEquals(3, calls.size());
  }

  @Test
  void createEventGetsOneKeyForAllAttempts() {
    failFirst.set(2);
    try (BatonClient c = builder().build()) {
      assertEquals("evt_1", c.events().createEvent(message("")).getEvent().getId());
    }
    assertEquals(3, keys.size());
    assertFalse(keys.get(0).isEmpty());
    assertEquals(36, keys.get(0).length()); // a UUID
    assertEquals(1, keys.stream().distinct().count());
  }

  @Test
  void eachCreateEventCallGetsItsOwnKeyAndGivenKeysAreKept() {
    try (BatonClient c = builder().build()) {
      c.events().createEvent(message(""));
      c.events().createEvent(message(""));
      c.events().createEvent(message("mine-1"));
    }
    assertEquals(3, keys.size());
    assertFalse(keys.get(0).equals(keys.get(1)));
    assertEquals("mine-1", keys.get(2));
  }

  @Test
  void withoutAutomaticKeysCreateEventIsNeitherKeyedNorRetried() {
    failFirst.set(1);
    try (BatonClient c = builder().idempotencyKeys(false).build()) {
      assertThrows(StatusRuntimeException.class, () -> c.events().createEvent(message("")));
    }
    assertEquals(List.of(""), keys);
  }
}
