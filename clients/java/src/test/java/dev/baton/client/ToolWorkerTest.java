package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import dev.baton.v1.ServeToolsRequest;
import dev.baton.v1.ServeToolsResponse;
import dev.baton.v1.ToolCallCancel;
import dev.baton.v1.ToolCallRequest;
import dev.baton.v1.ToolWorkerServiceGrpc;
import dev.baton.v1.WorkerAccepted;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The worker loop against a scripted in-process ToolWorkerService (one stream per test step). */
class ToolWorkerTest {
  private static final Duration WAIT = Duration.ofSeconds(5);

  record OrderArgs(String orderId) {}

  /** One ServeTools call as the server sees it. */
  static final class ServerStream {
    final StreamObserver<ServeToolsResponse> out;
    final BlockingQueue<ServeToolsRequest> received = new LinkedBlockingQueue<>();
    final CompletableFuture<Status> closed = new CompletableFuture<>(); // OK on half-close

    ServerStream(StreamObserver<ServeToolsResponse> out) {
      this.out = out;
    }

    ServeToolsRequest next() throws InterruptedException {
      ServeToolsRequest r = received.poll(WAIT.toMillis(), TimeUnit.MILLISECONDS);
      assertNotNull(r, "the worker sent nothing");
      return r;
    }

    /** The next message that is not a heartbeat. */
    ServeToolsRequest nextReal() throws InterruptedException {
      while (true) {
        ServeToolsRequest r = next();
        if (!r.hasHeartbeat()) {
          return r;
        }
      }
    }

    void accept(String id, Duration heartbeat) {
      out.onNext(
          ServeToolsResponse.newBuilder()
              .setAccepted(
                  WorkerAccepted.newBuilder()
                      .setWorkerId(id)
                      .setHeartbeatInterval(
                          com.google.protobuf.Duration.newBuilder()
                              .setSeconds(heartbeat.getSeconds())
                              .setNanos(heartbeat.getNano())))
              .build());
    }

    void call(String id, String tool, String orderId) {
      out.onNext(
          ServeToolsResponse.newBuilder()
              .setCall(
                  ToolCallRequest.newBuilder()
                      .setCallId(id)
                      .setTool(tool)
                      .setSessionId("ses_1")
                      .setAttempt(1)
                      .setArguments(
                          Struct.newBuilder().putFields("orderId", Value.newBuilder().setStringValue(orderId).build())))
              .build());
    }
  }

  private final BlockingQueue<ServerStream> streams = new LinkedBlockingQueue<>();
  private BatonClient client;
  private ToolWorker worker;

  private final java.util.List<Server> servers = new java.util.ArrayList<>();
  private final java.util.List<BatonClient> clients = new java.util.ArrayList<>();

  @BeforeEach
  void setUp() throws Exception {
    client = replica(streams);
  }

  /** Another scripted server whose streams land in {@code into}; a client on it. */
  private BatonClient replica(BlockingQueue<ServerStream> into) throws Exception {
    String name = InProcessServerBuilder.generateName();
    Server started =
        InProcessServerBuilder.forName(name)
            .addService(
                new ToolWorkerServiceGrpc.ToolWorkerServiceImplBase() {
                  @Override
                  public StreamObserver<ServeToolsRequest> serveTools(StreamObserver<ServeToolsResponse> out) {
                    ServerStream s = new ServerStream(out);
                    into.add(s);
                    return new StreamObserver<>() {
                      @Override
                      public void onNext(ServeToolsRequest r) {
                        s.received.add(r);
                      }

                      @Override
                      public void onError(Throwable t) {
                        s.closed.complete(Status.fromThrowable(t));
                      }

                      @Override
                      public void onCompleted() {
                        s.closed.complete(Status.OK);
                        out.onCompleted(); // as Baton does once a drained worker half-closes
                      }
                    };
                  }
                })
            .build()
            .start();
    servers.add(started);
    BatonClient made = BatonClient.wrap(InProcessChannelBuilder.forName(name).build(), true);
    clients.add(made);
    return made;
  }

  @AfterEach
  void tearDown() {
    if (worker != null) {
      worker.stop(Duration.ZERO);
    }
    clients.forEach(BatonClient::close);
    servers.forEach(Server::shutdownNow);
  }

  private ServerStream nextStream() throws InterruptedException {
    ServerStream s = streams.poll(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    assertNotNull(s, "the worker opened no stream");
    return s;
  }

  private ToolWorker.Builder builder(WorkerTool... tools) {
    return ToolWorker.builder()
        .client("in-process", client)
        .name("orders")
        .maxConcurrentCalls(3)
        .initialBackoff(Duration.ofMillis(5))
        .maxBackoff(Duration.ofMillis(20))
        .tool(tools);
  }

  private static WorkerTool checkOrder() {
    return WorkerTool.forRecord("check_order_status", OrderArgs.class)
        .description("Look up the delivery status of an order by its number.")
        .handler(
            (call, args) -> {
              String digits = args.orderId().replaceAll("\\D", "");
              return ToolResult.of(java.util.Map.of("found", !digits.isEmpty(), "order", digits));
            });
  }

  @Test
  void declaresRunsCallsAndAnswers() throws Exception {
    worker = builder(checkOrder()).build();
    worker.start();
    ServerStream s = nextStream();
    ServeToolsRequest declare = s.next();
    assertTrue(declare.hasDeclare());
    assertEquals("orders", declare.getDeclare().getWorkerName());
    assertEquals(3, declare.getDeclare().getMaxConcurrentCalls());
    assertEquals("check_order_status", declare.getDeclare().getTools(0).getName());
    s.accept("orders-1", Duration.ofSeconds(15));
    worker.awaitAccepted(WAIT);
    assertEquals("orders-1", worker.workerIds().get("in-process"));

    s.call("c1", "check_order_status", "A-123");
    ServeToolsRequest result = s.nextReal();
    assertEquals("c1", result.getResult().getCallId());
    assertEquals("123", result.getResult().getData().getStructValue().getFieldsOrThrow("order").getStringValue());

    s.call("c2", "no_such_tool", "1");
    ServeToolsRequest unknown = s.nextReal();
    assertEquals("c2", unknown.getResult().getCallId());
    assertEquals("this worker does not serve no_such_tool", unknown.getResult().getError());
  }

  @Test
  void cancelInterruptsTheHandlerAndSendsNothing() throws Exception {
    CountDownLatch started = new CountDownLatch(1);
    CompletableFuture<Boolean> interrupted = new CompletableFuture<>();
    WorkerTool slow =
        WorkerTool.forRecord("slow", OrderArgs.class)
            .handler(
                (call, args) -> {
                  started.countDown();
                  try {
                    Thread.sleep(60_000);
                  } catch (InterruptedException e) {
                    interrupted.complete(call.isCancelled());
                    throw e;
                  }
                  return ToolResult.of("late");
                });
    worker = builder(slow, checkOrder()).build();
    worker.start();
    ServerStream s = nextStream();
    s.next();
    s.accept("w", Duration.ofSeconds(15));
    s.call("c1", "slow", "1");
    assertTrue(started.await(5, TimeUnit.SECONDS));
    s.out.onNext(ServeToolsResponse.newBuilder().setCancel(ToolCallCancel.newBuilder().setCallId("c1").setReason("deadline")).build());
    assertTrue(interrupted.get(5, TimeUnit.SECONDS));
    s.call("c2", "check_order_status", "7");
    ServeToolsRequest next = s.nextReal();
    assertEquals("c2", next.getResult().getCallId(), "no result for the cancelled call");
  }

  @Test
  void refusalEndsTheWorkerWithTheStatus() throws Exception {
    worker = builder(checkOrder()).build();
    worker.start();
    ServerStream s = nextStream();
    s.next();
    s.out.onError(Status.FAILED_PRECONDITION.withDescription("check_order_status is a Python tool of this server").asRuntimeException());
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> worker.awaitAccepted(WAIT));
    assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode());
    assertTrue(worker.done().isCompletedExceptionally());
    assertNull(streams.poll(100, TimeUnit.MILLISECONDS), "a refusal is not retried");
  }

  @Test
  void reconnectsAndDeclaresAgainAfterUnavailable() throws Exception {
    worker = builder(checkOrder()).build();
    worker.start();
    ServerStream first = nextStream();
    first.next();
    first.accept("w-1", Duration.ofSeconds(15));
    worker.awaitAccepted(WAIT);
    first.out.onError(Status.UNAVAILABLE.withDescription("server shutting down").asRuntimeException());
    ServerStream second = nextStream();
    assertTrue(second.next().hasDeclare());
    second.accept("w-2", Duration.ofSeconds(15));
    second.call("c9", "check_order_status", "42");
    assertEquals("c9", second.nextReal().getResult().getCallId());
    assertEquals(2, worker.connections().get("in-process"));
  }

  @Test
  void silentServerIsLeftAndHeartbeatsAreSent() throws Exception {
    worker = builder(checkOrder()).build();
    worker.start();
    ServerStream first = nextStream();
    first.next();
    first.accept("w-1", Duration.ofMillis(50));
    assertTrue(first.next().hasHeartbeat(), "the worker sends heartbeats at the server's interval");
    // The server says nothing more: after 3 intervals the worker opens another stream.
    ServerStream second = nextStream();
    assertTrue(second.next().hasDeclare());
    assertEquals(Status.Code.CANCELLED, first.closed.get(5, TimeUnit.SECONDS).getCode());
  }

  @Test
  void stopDrainsRunningCallsThenHalfCloses() throws Exception {
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    WorkerTool slow =
        WorkerTool.forRecord("slow", OrderArgs.class)
            .handler(
                (call, args) -> {
                  started.countDown();
                  release.await();
                  return ToolResult.handoff("done draining");
                });
    worker = builder(slow).build();
    worker.start();
    ServerStream s = nextStream();
    s.next();
    s.accept("w", Duration.ofSeconds(15));
    s.call("c1", "slow", "1");
    assertTrue(started.await(5, TimeUnit.SECONDS));
    CompletableFuture<Void> stopped = CompletableFuture.runAsync(() -> worker.stop(Duration.ofSeconds(5)));
    assertTrue(s.nextReal().hasDrain());
    release.countDown();
    ServeToolsRequest result = s.nextReal();
    assertEquals("manual", result.getResult().getControlMap().get("mode"));
    assertEquals(Status.OK, s.closed.get(5, TimeUnit.SECONDS), "half-closed after the results");
    stopped.get(5, TimeUnit.SECONDS);
    worker.done().get(1, TimeUnit.SECONDS);
    assertNull(streams.poll(100, TimeUnit.MILLISECONDS), "no reconnect after a drain");
  }

  @Test
  void drainGraceCancelsHandlersThatDoNotFinish() throws Exception {
    CompletableFuture<Boolean> interrupted = new CompletableFuture<>();
    CountDownLatch started = new CountDownLatch(1);
    WorkerTool stuck =
        WorkerTool.forRecord("stuck", OrderArgs.class)
            .handler(
                (call, args) -> {
                  started.countDown();
                  try {
                    Thread.sleep(60_000);
                  } catch (InterruptedException e) {
                    interrupted.complete(true);
                  }
                  return ToolResult.of("late");
                });
    worker = builder(stuck).build();
    worker.start();
    ServerStream s = nextStream();
    s.next();
    s.accept("w", Duration.ofSeconds(15));
    s.call("c1", "stuck", "1");
    assertTrue(started.await(5, TimeUnit.SECONDS));
    CompletableFuture<Void> stopped = CompletableFuture.runAsync(() -> worker.stop(Duration.ofMillis(100)));
    assertTrue(s.nextReal().hasDrain());
    assertTrue(interrupted.get(5, TimeUnit.SECONDS));
    assertEquals(Status.OK, s.closed.get(5, TimeUnit.SECONDS));
    stopped.get(5, TimeUnit.SECONDS);
    assertNull(s.received.poll(100, TimeUnit.MILLISECONDS), "no result for a call cancelled by the drain");
  }

  @Test
  void oneStreamPerReplicaAndARefusalClosesThemAll() throws Exception {
    BlockingQueue<ServerStream> otherStreams = new LinkedBlockingQueue<>();
    BatonClient other = replica(otherStreams);
    worker = builder(checkOrder()).client("replica-2", other).build();
    worker.start();
    ServerStream a = nextStream();
    ServerStream b = otherStreams.poll(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    assertNotNull(b);
    assertTrue(a.next().hasDeclare());
    assertTrue(b.next().hasDeclare());
    a.accept("w-a", Duration.ofSeconds(15));
    b.accept("w-b", Duration.ofSeconds(15));
    worker.awaitAccepted(WAIT);
    assertEquals(java.util.Map.of("in-process", "w-a", "replica-2", "w-b"), worker.workerIds());

    b.out.onError(Status.PERMISSION_DENIED.withDescription("key revoked").asRuntimeException());
    java.util.concurrent.ExecutionException failed =
        assertThrows(java.util.concurrent.ExecutionException.class, () -> worker.done().get(5, TimeUnit.SECONDS));
    StatusRuntimeException e = assertInstanceOf(StatusRuntimeException.class, failed.getCause());
    assertEquals(Status.Code.PERMISSION_DENIED, e.getStatus().getCode());
    assertEquals(Status.Code.CANCELLED, a.closed.get(5, TimeUnit.SECONDS).getCode(), "the other stream is closed");
  }
}
