package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.baton.v1.Agent;
import dev.baton.v1.CreateCustomerRequest;
import dev.baton.v1.CreateEventRequest;
import dev.baton.v1.CreateSessionRequest;
import dev.baton.v1.Customer;
import dev.baton.v1.Event;
import dev.baton.v1.EventKind;
import dev.baton.v1.EventSource;
import dev.baton.v1.GetSessionRequest;
import dev.baton.v1.ListAgentsRequest;
import dev.baton.v1.ListToolsRequest;
import dev.baton.v1.MessageData;
import dev.baton.v1.Session;
import dev.baton.v1.SessionMode;
import dev.baton.v1.Tool;
import dev.baton.v1.ToolCall;
import dev.baton.v1.ToolOrigin;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfEnvironmentVariable;

/**
 * The Java worker against a real {@code baton serve --example-agent --example-agent-tools workers}
 * (clients/java/worker-smoke.sh starts one on loopback and sets the variables): the example
 * agent's two tools run here, the order is looked up, the handoff opens.
 */
@EnabledIfEnvironmentVariable(named = "BATON_WORKER_TARGET", matches = ".+")
class LiveWorkerTest {
  private static final Duration WAIT = Duration.ofSeconds(20);
  private static final String TARGET = System.getenv("BATON_WORKER_TARGET");
  private static final String WORKER_KEY = System.getenv("BATON_WORKER_KEY");
  private static final String INTEGRATION_KEY = System.getenv("BATON_INTEGRATION_KEY");

  record OrderArgs(@ToolParam("The order number") String orderId) {}

  record HandoffArgs(String reason) {}

  static WorkerTool checkOrder() {
    return WorkerTool.forRecord("check_order_status", OrderArgs.class)
        .description("Look up the delivery status of an order by its number.")
        .retrySafe(true)
        .handler(
            (call, args) -> {
              String digits = args.orderId().replaceAll("\\D", "");
              if (digits.isEmpty()) {
                return ToolResult.of(Map.of("found", false, "hint", "ask for the order number"));
              }
              String order = digits.length() > 8 ? digits.substring(digits.length() - 8) : digits;
              return ToolResult.of(Map.of("found", true, "order", order, "status", "in transit"));
            });
  }

  static WorkerTool handoff() {
    return WorkerTool.forRecord("initiate_human_handoff", HandoffArgs.class)
        .description("Hand the conversation to a human agent; the AI stops answering.")
        .handler((call, args) -> ToolResult.handoff(args.reason(), Map.of("handoff", "requested", "reason", args.reason())));
  }

  private static ToolWorker.Builder worker(String key) {
    return ToolWorker.builder()
        .targets(TARGET)
        .plaintext()
        .credentials(BatonCredentials.apiKey(key))
        .name("java-live")
        .maxConcurrentCalls(4)
        .initialBackoff(Duration.ofMillis(50))
        .tool(checkOrder(), handoff());
  }

  @Test
  void theExampleAgentCallsTheJavaWorker() throws Exception {
    ToolWorker worker = worker(WORKER_KEY).build();
    worker.start();
    try (BatonClient baton =
        BatonClient.builder(TARGET).plaintext().credentials(BatonCredentials.apiKey(INTEGRATION_KEY)).build()) {
      worker.awaitAccepted(WAIT);
      String workerId = worker.workerIds().get(TARGET);
      Map<String, Tool> tools = new java.util.HashMap<>();
      for (Tool t : baton.tools().withDeadlineAfter(5, TimeUnit.SECONDS).listTools(ListToolsRequest.getDefaultInstance()).getToolsList()) {
        tools.put(t.getName(), t);
      }
      Tool check = tools.get("check_order_status");
      assertEquals(ToolOrigin.TOOL_ORIGIN_WORKER, check.getOrigin());
      assertTrue(check.getRetrySafe());
      assertTrue(check.getWorkersList().stream().anyMatch(w -> w.getWorkerId().equals(workerId)), check.toString());

      Agent agent =
          baton.agents().withDeadlineAfter(5, TimeUnit.SECONDS).listAgents(ListAgentsRequest.newBuilder().setPageSize(100).build())
              .getAgentsList().stream().filter(a -> a.getName().equals("Baton Support (example)")).findFirst().orElseThrow();
      Customer customer =
          baton.customers().withDeadlineAfter(5, TimeUnit.SECONDS)
              .createCustomer(CreateCustomerRequest.newBuilder().setCustomer(Customer.newBuilder().setName("Java worker")).build())
              .getCustomer();
      Session session =
          baton.sessions().withDeadlineAfter(5, TimeUnit.SECONDS)
              .createSession(CreateSessionRequest.newBuilder()
                  .setSession(Session.newBuilder().setAgentId(agent.getId()).setCustomerId(customer.getId())).build())
              .getSession();
      try (EventStream events = baton.follow(session.getId(), 0)) {
        say(baton, session.getId(), "hi, has my order #48213 shipped yet?");
        ToolCall lookup = nextToolCall(events);
        assertEquals("check_order_status", lookup.getName());
        assertEquals("", lookup.getError());
        assertEquals("48213", lookup.getResult().getStructValue().getFieldsOrThrow("order").getStringValue());

        say(baton, session.getId(), "can I talk to a human please?");
        ToolCall transfer = nextToolCall(events);
        assertEquals("initiate_human_handoff", transfer.getName());
        assertEquals("requested", transfer.getResult().getStructValue().getFieldsOrThrow("handoff").getStringValue());
      }
      long deadline = System.nanoTime() + WAIT.toNanos();
      SessionMode mode;
      do {
        mode = baton.sessions().withDeadlineAfter(5, TimeUnit.SECONDS)
            .getSession(GetSessionRequest.newBuilder().setSessionId(session.getId()).build()).getSession().getMode();
      } while (mode != SessionMode.SESSION_MODE_MANUAL && System.nanoTime() < deadline && sleep());
      assertEquals(SessionMode.SESSION_MODE_MANUAL, mode, "the worker's control opened a handoff");
    } finally {
      worker.stop(Duration.ofSeconds(5));
    }
    worker.done().get(1, TimeUnit.SECONDS);
  }

  @Test
  void aKeyWithoutTheToolWorkerRoleIsRefused() throws Exception {
    ToolWorker worker = worker(INTEGRATION_KEY).build();
    worker.start();
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> worker.awaitAccepted(WAIT));
    assertEquals(Status.Code.PERMISSION_DENIED, e.getStatus().getCode(), e.toString());
    assertTrue(worker.done().isCompletedExceptionally());
  }

  private static boolean sleep() {
    try {
      Thread.sleep(50);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return true;
  }

  private static void say(BatonClient baton, String sessionId, String text) {
    baton.events().withDeadlineAfter(5, TimeUnit.SECONDS)
        .createEvent(CreateEventRequest.newBuilder()
            .setSessionId(sessionId)
            .setKind(EventKind.EVENT_KIND_MESSAGE)
            .setSource(EventSource.EVENT_SOURCE_CUSTOMER)
            .setMessage(MessageData.newBuilder().setText(text))
            .build());
  }

  private static ToolCall nextToolCall(EventStream events) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (System.nanoTime() < deadline) {
      Event e = events.poll(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
      if (e != null && e.hasTool()) {
        return e.getTool().getToolCalls(0);
      }
    }
    throw new AssertionError("no TOOL event within " + WAIT);
  }
}
