package dev.baton.client;

import dev.baton.v1.CreateEventRequest;
import dev.baton.v1.EventServiceGrpc;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.util.UUID;

/** The interceptors {@link BatonClient} puts in front of its channel. */
final class ClientInterceptorsImpl {
  private ClientInterceptorsImpl() {}

  /**
   * Gives every {@code CreateEvent} without an idempotency key a random one (a UUID), before the
   * retry layer sees the message: all attempts of one call carry the same key, so a retried
   * append returns the original event instead of appending it twice.
   */
  static final class IdempotencyKeys implements ClientInterceptor {
    private static final String CREATE_EVENT = EventServiceGrpc.getCreateEventMethod().getFullMethodName();

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
      ClientCall<ReqT, RespT> call = next.newCall(method, options);
      if (!CREATE_EVENT.equals(method.getFullMethodName())) {
        return call;
      }
      return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
        @Override
        @SuppressWarnings("unchecked")
        public void sendMessage(ReqT message) {
          super.sendMessage((ReqT) withKey(message));
        }
      };
    }

    static Object withKey(Object message) {
      if (message instanceof CreateEventRequest r && r.getIdempotencyKey().isEmpty()) {
        return r.toBuilder().setIdempotencyKey(UUID.randomUUID().toString()).build();
      }
      return message;
    }
  }

  /**
   * Attaches the client's {@link BatonCredentials} to calls that have none of their own, and
   * invalidates a cached token when the server answers UNAUTHENTICATED.
   */
  static final class Credentials implements ClientInterceptor {
    private final BatonCredentials credentials;

    Credentials(BatonCredentials credentials) {
      this.credentials = credentials;
    }

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
      if (options.getCredentials() != null) {
        return next.newCall(method, options); // the caller chose other credentials for this call
      }
      ClientCall<ReqT, RespT> call = next.newCall(method, options.withCallCredentials(credentials));
      return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
        @Override
        public void start(Listener<RespT> listener, Metadata headers) {
          super.start(
              new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
                @Override
                public void onClose(Status status, Metadata trailers) {
                  if (status.getCode() == Status.Code.UNAUTHENTICATED) {
                    credentials.invalidate();
                  }
                  super.onClose(status, trailers);
                }
              },
              headers);
        }
      };
    }
  }

  /**
   * Unary calls wait for a ready connection (bounded by their deadline) instead of failing at
   * once while the channel is reconnecting, e.g. just after a server restart.
   */
  static final class WaitForReady implements ClientInterceptor {
    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
      if (method.getType() == MethodDescriptor.MethodType.UNARY) {
        options = options.withWaitForReady();
      }
      return next.newCall(method, options);
    }
  }
}
