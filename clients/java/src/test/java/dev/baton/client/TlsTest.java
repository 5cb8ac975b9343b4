package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.baton.v1.AgentServiceGrpc;
import dev.baton.v1.ListAgentsRequest;
import dev.baton.v1.ListAgentsResponse;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsServerCredentials;
import io.grpc.stub.StreamObserver;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** TLS with a custom CA against a real (Netty) TLS server on localhost; test fixtures in resources/tls. */
class TlsTest {
  private final List<String> auth = new CopyOnWriteArrayList<>();
  private Server server;
  private int port;

  private static Path fixture(String name) throws URISyntaxException {
    return Path.of(TlsTest.class.getResource("/tls/" + name).toURI());
  }

  @BeforeEach
  void setUp() throws Exception {
    TlsServerCredentials creds;
    try (InputStream cert = TlsTest.class.getResourceAsStream("/tls/server.pem");
        InputStream key = TlsTest.class.getResourceAsStream("/tls/server.key")) {
      creds = (TlsServerCredentials) TlsServerCredentials.create(cert, key);
    }
    ServerInterceptor capture =
        new ServerInterceptor() {
          @Override
          public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
            auth.add(String.valueOf(headers.get(BatonCredentials.AUTHORIZATION)));
            return next.startCall(call, headers);
          }
        };
    server =
        Grpc.newServerBuilderForPort(0, creds)
            .addService(
                ServerInterceptors.intercept(
                    new AgentServiceGrpc.AgentServiceImplBase() {
                      @Override
                      public void listAgents(ListAgentsRequest r, StreamObserver<ListAgentsResponse> out) {
                        out.onNext(ListAgentsResponse.getDefaultInstance());
                        out.onCompleted();
                      }
                    },
                    capture))
            .build()
            .start();
    port = ((InetSocketAddress) server.getListenSockets().get(0)).getPort();
  }

  @AfterEach
  void tearDown() throws InterruptedException {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  private static void listAgents(BatonClient c) {
    c.agents().withDeadlineAfter(10, TimeUnit.SECONDS).listAgents(ListAgentsRequest.getDefaultInstance());
  }

  @Test
  void trustsTheGivenCaAndSendsCredentials() throws Exception {
    try (BatonClient c =
        BatonClient.builder("localhost:" + port).tlsCa(fixture("ca.pem")).credentials(BatonCredentials.apiKey("bk_key_x")).build()) {
      listAgents(c);
    }
    assertEquals(List.of("Bearer bk_key_x"), auth);
  }

  @Test
  void refusesAServerItDoesNotTrust() {
    try (BatonClient c = BatonClient.builder("localhost:" + port).retryAttempts(1).build()) { // system roots only
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> listAgents(c));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    }
    assertEquals(List.of(), auth);
  }

  @Test
  void checksTheNameAgainstTheCertificate() throws Exception {
    try (BatonClient c =
        BatonClient.builder("127.0.0.1:" + port).tlsCa(fixture("ca.pem")).overrideAuthority("not-localhost").retryAttempts(1).build()) {
      assertEquals(Status.Code.UNAVAILABLE, assertThrows(StatusRuntimeException.class, () -> listAgents(c)).getStatus().getCode());
    }
  }
}
