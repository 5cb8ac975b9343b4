package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.baton.v1.Agent;
import dev.baton.v1.AgentServiceGrpc;
import dev.baton.v1.GetAgentRequest;
import dev.baton.v1.GetAgentResponse;
import io.grpc.Context;
import io.grpc.Contexts;
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
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Credentials: header on the wire, provider caching and refresh, invalidation on UNAUTHENTICATED. */
class CredentialsTest {
  private static final Context.Key<String> AUTH = Context.key("auth");
  private final List<String> seen = new CopyOnWriteArrayList<>();
  private volatile String accepted = "good";
  private Server server;
  private String name;

  @BeforeEach
  void setUp() throws Exception {
    name = InProcessServerBuilder.generateName();
    ServerInterceptor capture =
        new ServerInterceptor() {
          @Override
          public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
            String auth = headers.get(BatonCredentials.AUTHORIZATION);
            seen.add(String.valueOf(auth));
            return Contexts.interceptCall(Context.current().withValue(AUTH, auth), call, headers, next);
          }
        };
    AgentServiceGrpc.AgentServiceImplBase agents =
        new AgentServiceGrpc.AgentServiceImplBase() {
          @Override
          public void getAgent(GetAgentRequest request, StreamObserver<GetAgentResponse> out) {
            if (!("Bearer " + accepted).equals(AUTH.get())) {
              out.onError(Status.UNAUTHENTICATED.withDescription("unknown credential").asRuntimeException());
              return;
            }
            out.onNext(GetAgentResponse.newBuilder().setAgent(Agent.newBuilder().setId(request.getAgentId())).build());
            out.onCompleted();
          }
        };
    server = InProcessServerBuilder.forName(name).directExecutor().addService(ServerInterceptors.intercept(agents, capture)).build().start();
  }

  @AfterEach
  void tearDown() {
    server.shutdownNow();
  }

  private BatonClient client(BatonCredentials credentials) {
    return BatonClient.builder(InProcessChannelBuilder.forName(name).directExecutor()).credentials(credentials).build();
  }

  private static GetAgentRequest get() {
    return GetAgentRequest.newBuilder().setAgentId("agt_1").build();
  }

  @Test
  void apiKeyIsSentAsBearer() {
    try (BatonClient c = client(BatonCredentials.apiKey("good"))) {
      assertEquals("agt_1", c.agents().getAgent(get()).getAgent().getId());
    }
    assertEquals(List.of("Bearer good"), seen);
  }

  @Test
  void noCredentialsSendsNoHeader() {
    try (BatonClient c = BatonClient.builder(InProcessChannelBuilder.forName(name).directExecutor()).build()) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> c.agents().getAgent(get()));
      assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode());
    }
    assertEquals(List.of("null"), seen);
  }

  @Test
  void providerIsCalledOnceThenAgainAfterUnauthenticated() {
    AtomicInteger fetches = new AtomicInteger();
    AtomicReference<String> next = new AtomicReference<>("good");
    try (BatonClient c =
        client(BatonCredentials.fromProvider(() -> {
          fetches.incrementAndGet();
          return AccessToken.of(next.get(), Instant.now().plus(Duration.ofHours(1)));
        }))) {
      c.agents().getAgent(get());
      c.agents().getAgent(get());
      assertEquals(1, fetches.get());
      accepted = "rotated"; // the server stops accepting the cached token
      next.set("rotated");
      assertThrows(StatusRuntimeException.class, () -> c.agents().getAgent(get()));
      c.agents().getAgent(get()); // refetched after UNAUTHENTICATED
      assertEquals(2, fetches.get());
    }
    assertEquals(List.of("Bearer good", "Bearer good", "Bearer good", "Bearer rotated"), seen);
  }

  @Test
  void providerFailureFailsTheCallUnauthenticated() {
    try (BatonClient c = client(BatonCredentials.fromProvider(() -> {
      throw new IllegalStateException("token service down");
    }))) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> c.agents().getAgent(get()));
      assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode());
      assertTrue(e.getStatus().getDescription().contains("token service down"));
    }
    assertEquals(List.of(), seen);
  }

  @Test
  void supplierIsAskedForEveryCall() {
    AtomicInteger calls = new AtomicInteger();
    try (BatonClient c = client(BatonCredentials.fromSupplier(() -> {
      calls.incrementAndGet();
      return "good";
    }))) {
      c.agents().getAgent(get());
      c.agents().getAgent(get());
    }
    assertEquals(2, calls.get());
  }

  /** A clock the test moves. */
  private static final class MutableClock extends Clock {
    Instant now = Instant.parse("2026-01-01T00:00:00Z");

    @Override
    public ZoneOffset getZone() {
      return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(java.time.ZoneId zone) {
      return this;
    }

    @Override
    public Instant instant() {
      return now;
    }
  }

  @Test
  void refreshesAfterEightyPercentOfTheLifetime() throws Exception {
    MutableClock clock = new MutableClock();
    AtomicInteger fetches = new AtomicInteger();
    BatonCredentials creds =
        BatonCredentials.fromProvider(
            () -> AccessToken.of("t" + fetches.incrementAndGet(), clock.now.plus(Duration.ofSeconds(100))), clock);
    assertEquals("t1", creds.credential());
    clock.now = clock.now.plusSeconds(79);
    assertEquals("t1", creds.credential());
    clock.now = clock.now.plusSeconds(1); // 80 s of 100
    assertEquals("t2", creds.credential());
    assertEquals("t2", creds.credential());
    creds.invalidate();
    assertEquals("t3", creds.credential());

    AtomicInteger forever = new AtomicInteger();
    BatonCredentials never = BatonCredentials.fromProvider(() -> AccessToken.of("k" + forever.incrementAndGet()), clock);
    clock.now = clock.now.plus(Duration.ofDays(400));
    assertEquals("k1", never.credential());
    assertEquals("k1", never.credential());
  }

  @Test
  void rejectsBlankSecrets() {
    assertThrows(IllegalArgumentException.class, () -> BatonCredentials.apiKey(" "));
    assertThrows(NullPointerException.class, () -> BatonCredentials.token(null));
    assertTrue(AccessToken.of("secret").toString().indexOf("secret") < 0);
  }
}
