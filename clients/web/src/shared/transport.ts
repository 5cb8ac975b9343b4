// Browser transport: the Connect protocol over fetch (HTTP/1.1 works; server streams arrive as
// enveloped frames on one response), gRPC-Web when asked. Every call carries
// `authorization: Bearer <credential>` from a provider, so a widget can fetch fresh customer
// tokens from its backend; an UNAUTHENTICATED answer drops the cached one.
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

export type Protocol = "connect" | "grpc-web";

/** Returns a credential (API key or customer token); called when none is cached. */
export type CredentialProvider = () => string | Promise<string>;

export class Credentials {
  private cached: string | undefined;
  constructor(private readonly provider: CredentialProvider) {}

  static fixed(secret: string): Credentials {
    return new Credentials(() => secret);
  }

  async get(): Promise<string> {
    this.cached ??= await this.provider();
    return this.cached;
  }

  /** Forget the cached credential (after UNAUTHENTICATED); the next call asks again. */
  invalidate(): void {
    this.cached = undefined;
  }
}

export function makeTransport(
  baseUrl: string,
  credentials: Credentials,
  protocol: Protocol = "connect",
): Transport {
  const auth: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${await credentials.get()}`);
    try {
      return await next(request);
    } catch (error) {
      if (ConnectError.from(error).code === Code.Unauthenticated) credentials.invalidate();
      throw error;
    }
  };
  // Binary protobuf bodies: smaller than JSON and no JSON-mapping edge cases (Struct, int64).
  const options = { baseUrl: baseUrl.replace(/\/+$/, ""), interceptors: [auth], useBinaryFormat: true };
  return protocol === "grpc-web" ? createGrpcWebTransport(options) : createConnectTransport(options);
}

/** Errors worth retrying: the server or the network is away, not the request's fault. */
export function isTransient(error: unknown): boolean {
  const code = ConnectError.from(error).code;
  return (
    code === Code.Unavailable ||
    code === Code.Unknown ||
    code === Code.Internal ||
    code === Code.DeadlineExceeded ||
    code === Code.Aborted ||
    code === Code.Canceled ||
    code === Code.ResourceExhausted ||
    code === Code.Unauthenticated // a fresh credential may fix it: the provider is asked again
  );
}

/** UNAUTHENTICATED: the credential is wrong, revoked or expired. */
export function isUnauthenticated(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Unauthenticated;
}

/** A message a person can act on. */
export function describeError(error: unknown): string {
  const e = ConnectError.from(error);
  return e.rawMessage || Code[e.code] || "Something went wrong";
}
