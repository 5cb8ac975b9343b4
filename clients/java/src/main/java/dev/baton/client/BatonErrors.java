package dev.baton.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Reads Baton's rich error statuses without touching raw details. Every error the server raises
 * carries a {@code google.rpc.ErrorInfo} (domain {@code baton.v1}, an UPPER_SNAKE {@code reason}
 * such as {@code NOT_FOUND}, {@code UNAUTHENTICATED}, {@code IDEMPOTENCY_KEY_REUSED}, metadata
 * such as the resource and id); INVALID_ARGUMENT also a {@code google.rpc.BadRequest} with one
 * violation per field; RESOURCE_EXHAUSTED a {@code google.rpc.RetryInfo} with the delay to wait.
 *
 * <pre>{@code
 * } catch (StatusRuntimeException e) {
 *   BatonErrors.Decoded err = BatonErrors.decode(e);
 *   err.code();            // Status.Code.UNAUTHENTICATED
 *   err.reason();          // "UNAUTHENTICATED" ("" when the error has no ErrorInfo)
 *   err.metadata();        // Map<String, String>
 *   err.fieldViolations(); // List<BadRequest.FieldViolation>
 *   err.retryDelay();      // Optional<Duration>
 * }
 * }</pre>
 *
 * Every accessor also exists as a static method taking the {@code Throwable}. Any exception works:
 * one that is not a gRPC failure decodes as UNKNOWN with no details.
 */
public final class BatonErrors {
  /** The ErrorInfo domain of errors raised by the Baton server. */
  public static final String DOMAIN = "baton.v1";

  private BatonErrors() {}

  /** An error decoded once: status code, message and the typed details. */
  public record Decoded(
      Status.Code code,
      String message,
      String reason,
      String domain,
      Map<String, String> metadata,
      List<BadRequest.FieldViolation> fieldViolations,
      Optional<Duration> retryDelay) {

    /** True for UNAVAILABLE (server restarting or unreachable) or a RetryInfo delay to honour. */
    public boolean isRetryable() {
      return code == Status.Code.UNAVAILABLE || retryDelay.isPresent();
    }

    /** The description of the first violation of {@code field}, if any. */
    public Optional<String> violation(String field) {
      return fieldViolations.stream()
          .filter(v -> v.getField().equals(field))
          .map(BadRequest.FieldViolation::getDescription)
          .findFirst();
    }
  }

  /** Decodes {@code t} (a {@link io.grpc.StatusRuntimeException} or anything else). */
  public static Decoded decode(Throwable t) {
    Status s = Status.fromThrowable(t);
    Optional<ErrorInfo> info = errorInfo(t);
    return new Decoded(
        s.getCode(),
        s.getDescription() == null ? "" : s.getDescription(),
        info.map(ErrorInfo::getReason).orElse(""),
        info.map(ErrorInfo::getDomain).orElse(""),
        info.map(ErrorInfo::getMetadataMap).map(Map::copyOf).orElse(Map.of()),
        fieldViolations(t),
        retryDelay(t));
  }

  /** The status code of any gRPC failure (UNKNOWN for other exceptions). */
  public static Status.Code code(Throwable t) {
    return Status.fromThrowable(t).getCode();
  }

  /** True when {@code t} is a gRPC failure with status {@code code}. */
  public static boolean is(Throwable t, Status.Code code) {
    return code(t) == code;
  }

  /** The ErrorInfo detail, if the error carries one. */
  public static Optional<ErrorInfo> errorInfo(Throwable t) {
    return detail(t, ErrorInfo.class);
  }

  /** The ErrorInfo reason (e.g. NOT_FOUND, IDEMPOTENCY_KEY_REUSED, SERVER_SHUTTING_DOWN), or "". */
  public static String reason(Throwable t) {
    return errorInfo(t).map(ErrorInfo::getReason).orElse("");
  }

  /** The ErrorInfo metadata (e.g. {@code resource}, {@code id}); empty without ErrorInfo. */
  public static Map<String, String> metadata(Throwable t) {
    return errorInfo(t).map(ErrorInfo::getMetadataMap).map(Map::copyOf).orElse(Map.of());
  }

  /** The BadRequest detail of an INVALID_ARGUMENT error, if any. */
  public static Optional<BadRequest> badRequest(Throwable t) {
    return detail(t, BadRequest.class);
  }

  /** The field violations of an INVALID_ARGUMENT error (empty list when there are none). */
  public static List<BadRequest.FieldViolation> fieldViolations(Throwable t) {
    return badRequest(t).map(BadRequest::getFieldViolationsList).map(List::copyOf).orElse(List.of());
  }

  /** The RetryInfo delay (RESOURCE_EXHAUSTED: how long to wait before trying again), if any. */
  public static Optional<Duration> retryDelay(Throwable t) {
    return detail(t, RetryInfo.class)
        .filter(RetryInfo::hasRetryDelay)
        .map(r -> Duration.ofSeconds(r.getRetryDelay().getSeconds(), r.getRetryDelay().getNanos()));
  }

  /** One line for logs: code, message, reason, metadata, field violations, retry delay. */
  public static String describe(Throwable t) {
    Status s = Status.fromThrowable(t);
    StringBuilder b = new StringBuilder(s.getCode().name());
    if (s.getDescription() != null) {
      b.append(": ").append(s.getDescription());
    }
    errorInfo(t)
        .ifPresent(i -> b.append(" [reason=").append(i.getReason()).append(' ').append(i.getMetadataMap()).append(']'));
    fieldViolations(t)
        .forEach(v -> b.append(" {").append(v.getField()).append(": ").append(v.getDescription()).append('}'));
    retryDelay(t).ifPresent(d -> b.append(" (retry after ").append(d.toMillis()).append(" ms)"));
    Throwable cause = s.getCause();
    while (cause != null && cause.getCause() != null && cause.getCause() != cause) {
      cause = cause.getCause();
    }
    if (cause != null) {
      b.append(" (").append(cause.getClass().getSimpleName()).append(": ").append(cause.getMessage()).append(')');
    }
    return b.toString();
  }

  private static <T extends com.google.protobuf.Message> Optional<T> detail(Throwable t, Class<T> type) {
    com.google.rpc.Status proto = t == null ? null : StatusProto.fromThrowable(t);
    if (proto == null) {
      return Optional.empty();
    }
    for (Any any : proto.getDetailsList()) {
      if (any.is(type)) {
        try {
          return Optional.of(any.unpack(type));
        } catch (InvalidProtocolBufferException e) {
          return Optional.empty();
        }
      }
    }
    return Optional.empty();
  }
}
