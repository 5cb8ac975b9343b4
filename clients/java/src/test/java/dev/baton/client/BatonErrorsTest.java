package dev.baton.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import com.google.rpc.Code;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Decoding statuses built the way the server builds them (google.rpc.Status with details). */
class BatonErrorsTest {
  private static StatusRuntimeException error(Code code, String message, com.google.protobuf.Message... details) {
    com.google.rpc.Status.Builder s = com.google.rpc.Status.newBuilder().setCode(code.getNumber()).setMessage(message);
    for (com.google.protobuf.Message d : details) {
      s.addDetails(Any.pack(d));
    }
    return StatusProto.toStatusRuntimeException(s.build());
  }

  @Test
  void decodesInvalidArgumentWithFieldViolations() {
    StatusRuntimeException e =
        error(
            Code.INVALID_ARGUMENT,
            "request is invalid",
            ErrorInfo.newBuilder().setReason("INVALID_ARGUMENT").setDomain("baton.v1").putMetadata("fields", "ttl").build(),
            BadRequest.newBuilder()
                .addFieldViolations(BadRequest.FieldViolation.newBuilder().setField("ttl").setDescription("must be between 1 s and 86400 s"))
                .addFieldViolations(BadRequest.FieldViolation.newBuilder().setField("customer_id").setDescription("required"))
                .build());
    BatonErrors.Decoded d = BatonErrors.decode(e);
    assertEquals(Status.Code.INVALID_ARGUMENT, d.code());
    assertEquals("request is invalid", d.message());
    assertEquals("INVALID_ARGUMENT", d.reason());
    assertEquals(BatonErrors.DOMAIN, d.domain());
    assertEquals(Map.of("fields", "ttl"), d.metadata());
    assertEquals(2, d.fieldViolations().size());
    assertEquals(Optional.of("required"), d.violation("customer_id"));
    assertEquals(Optional.empty(), d.violation("nope"));
    assertEquals(Optional.empty(), d.retryDelay());
    assertFalse(d.isRetryable());
    assertEquals(List.of("ttl", "customer_id"), BatonErrors.fieldViolations(e).stream().map(BadRequest.FieldViolation::getField).toList());
    String line = BatonErrors.describe(e);
    assertTrue(line.startsWith("INVALID_ARGUMENT: request is invalid [reason=INVALID_ARGUMENT"), line);
    assertTrue(line.contains("{ttl: must be between 1 s and 86400 s}"), line);
  }

  @Test
  void decodesRetryInfo() {
    StatusRuntimeException e =
        error(
            Code.RESOURCE_EXHAUSTED,
            "too many streams",
            ErrorInfo.newBuilder().setReason("TOO_MANY_STREAMS").setDomain("baton.v1").build(),
            RetryInfo.newBuilder().setRetryDelay(com.google.protobuf.Duration.newBuilder().setSeconds(1).setNanos(500_000_000)).build());
    assertEquals(Optional.of(Duration.ofMillis(1500)), BatonErrors.retryDelay(e));
    BatonErrors.Decoded d = BatonErrors.decode(e);
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, d.code());
    assertEquals("TOO_MANY_STREAMS", d.reason());
    assertTrue(d.isRetryable());
    assertTrue(BatonErrors.describe(e).contains("retry after 1500 ms"));
  }

  @Test
  void unauthenticatedReasonAndCode() {
    StatusRuntimeException e =
        error(Code.UNAUTHENTICATED, "unknown API key", ErrorInfo.newBuilder().setReason("UNAUTHENTICATED").setDomain("baton.v1").build());
    assertTrue(BatonErrors.is(e, Status.Code.UNAUTHENTICATED));
    assertEquals("UNAUTHENTICATED", BatonErrors.reason(e));
    assertTrue(BatonErrors.errorInfo(e).isPresent());
  }

  @Test
  void plainStatusAndOtherExceptionsHaveNoDetails() {
    StatusRuntimeException plain = Status.UNAVAILABLE.withDescription("connection refused").asRuntimeException();
    BatonErrors.Decoded d = BatonErrors.decode(plain);
    assertEquals(Status.Code.UNAVAILABLE, d.code());
    assertEquals("", d.reason());
    assertEquals(Map.of(), d.metadata());
    assertEquals(List.of(), d.fieldViolations());
    assertTrue(d.isRetryable());

    BatonErrors.Decoded other = BatonErrors.decode(new IllegalStateException("boom"));
    assertEquals(Status.Code.UNKNOWN, other.code());
    assertEquals("", other.reason());
  }
}
