package dev.baton.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.util.Optional;

/**
 * Reads Baton's rich error statuses: every error carries a {@code google.rpc.ErrorInfo} (domain
 * {@code baton.v1}, an UPPER_SNAKE {@code reason}, metadata such as the resource and id), and
 * INVALID_ARGUMENT also a {@code google.rpc.BadRequest} with one violation per field.
 */
public final class BatonErrors {
  private BatonErrors() {}

  /** The status code of any gRPC failure (UNKNOWN for other exceptions). */
  public static Status.Code code(Throwable t) {
    return Status.fromThrowable(t).getCode();
  }

  /** The ErrorInfo detail, if the error carries one. */
  public static Optional<ErrorInfo> errorInfo(Throwable t) {
    return detail(t, ErrorInfo.class);
  }

  /** The ErrorInfo reason (e.g. NOT_FOUND, IDEMPOTENCY_KEY_REUSED, SERVER_SHUTTING_DOWN), or "". */
  public static String reason(Throwable t) {
    return errorInfo(t).map(ErrorInfo::getReason).orElse("");
  }

  /** The BadRequest detail of an INVALID_ARGUMENT error, if any. */
  public static Optional<BadRequest> badRequest(Throwable t) {
    return detail(t, BadRequest.class);
  }

  /** One line for logs: code, message, reason and field violations. */
  public static String describe(Throwable t) {
    Status s = Status.fromThrowable(t);
    StringBuilder b = new StringBuilder(s.getCode().name());
    if (s.getDescription() != null) {
      b.append(": ").append(s.getDescription());
    }
    errorInfo(t)
        .ifPresent(i -> b.append(" [reason=").append(i.getReason()).append(' ').append(i.getMetadataMap()).append(']'));
    badRequest(t)
        .ifPresent(
            r ->
                r.getFieldViolationsList()
                    .forEach(v -> b.append(" {").append(v.getField()).append(": ").append(v.getDescription()).append('}')));
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
    com.google.rpc.Status proto = StatusProto.fromThrowable(t);
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
