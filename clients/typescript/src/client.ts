// Hand-written Baton client: typed Connect clients for the services over gRPC (HTTP/2), and
// `follow`, a resuming subscription to a session's event log. Generated code lives in ./gen.
import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { CallOptions, Client, Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import type { Event, EventKind, EventSource } from "./gen/baton/v1/message_pb.js";
import { ListEventsRequestSchema } from "./gen/baton/v1/request_response_pb.js";
import {
  AgentService,
  CustomerService,
  EventService,
  SessionService,
} from "./gen/baton/v1/service_pb.js";

/** Options of {@link BatonClient}. Give `target` or `baseUrl`, or a ready `transport`. */
export interface BatonClientOptions {
  /** "host:port" of a plaintext server, e.g. "127.0.0.1:8800". */
  target?: string;
  /** Full base URL, e.g. "http://127.0.0.1:8800" or "https://baton.example.com". */
  baseUrl?: string;
  /** A transport to use as is (target, baseUrl and interceptors are then ignored). */
  transport?: Transport;
  /** Interceptors applied to every call (logging, auth headers, ...). */
  interceptors?: Interceptor[];
}

/** Options of {@link BatonClient.follow} and {@link BatonClient.followItems}. */
export interface FollowOptions {
  /** First offset to deliver (inclusive). Default 0: the whole log, then live events. */
  fromOffset?: bigint | number;
  /** Only events of these kinds; empty or absent means all kinds. */
  kinds?: EventKind[];
  /** Only events from these sources; empty or absent means all sources. */
  sources?: EventSource[];
  /** Aborting ends the iteration quietly (no error is thrown). */
  signal?: AbortSignal;
  /** First reconnect delay in ms (before jitter). Default 200. */
  initialBackoffMs?: number;
  /** Upper bound of the reconnect delay in ms. Default 10000. */
  maxBackoffMs?: number;
  /** Give up (rethrowing the last error) after this many reconnects in a row without
   * receiving anything. Default: retry forever. */
  maxRetries?: number;
  /** Codes that trigger a reconnect. Default: [Code.Unavailable]. An unexpected end of the
   * stream and a CANCELED that `signal` did not cause (how connect-node reports a dropped
   * connection) always trigger one. */
  retryableCodes?: Code[];
  /** Called before each reconnect, e.g. for logging. */
  onReconnect?: (info: ReconnectInfo) => void;
}

/** What {@link FollowOptions.onReconnect} is told. */
export interface ReconnectInfo {
  /** Why the previous stream ended: a ConnectError, or undefined if it ended without one. */
  error: ConnectError | undefined;
  /** 1 for the first reconnect after a healthy stream, 2 for the next in a row, ... */
  attempt: number;
  /** How long follow waits before reconnecting. */
  delayMs: number;
  /** The offset the new stream starts from. */
  nextOffset: bigint;
}

/** An item of {@link BatonClient.followItems}: an event, or a stream marker. */
export type FollowItem =
  | { kind: "event"; event: Event }
  /** Everything stored when the (re)subscription started has been delivered. Sent after
   * every (re)connect. */
  | { kind: "caughtUp"; nextOffset: bigint }
  /** The idle stream is alive; all offsets below `nextOffset` were delivered or filtered. */
  | { kind: "heartbeat"; nextOffset: bigint; time: Timestamp | undefined }
  /** The subscriber fell behind and the server caught it up from the store. Informational. */
  | { kind: "fellBehind" }
  /** The stream broke and follow is about to reconnect from `nextOffset`. */
  | { kind: "reconnecting"; info: ReconnectInfo };

/** "host:port" or URL to a base URL. */
function toBaseUrl(target: string): string {
  return /^[a-z]+:\/\//i.test(target) ? target : `http://${target}`;
}

/** Client of a Baton server: one typed client per service and a resuming event follower. */
export class BatonClient {
  readonly transport: Transport;
  readonly agents: Client<typeof AgentService>;
  readonly customers: Client<typeof CustomerService>;
  readonly sessions: Client<typeof SessionService>;
  readonly events: Client<typeof EventService>;

  constructor(options: string | BatonClientOptions) {
    const opts = typeof options === "string" ? { target: options } : options;
    if (opts.transport) {
      this.transport = opts.transport;
    } else {
      const baseUrl = opts.baseUrl ?? (opts.target ? toBaseUrl(opts.target) : undefined);
      if (!baseUrl) throw new Error("BatonClient: give target, baseUrl or transport");
      this.transport = createGrpcTransport({ baseUrl, interceptors: opts.interceptors });
    }
    this.agents = createClient(AgentService, this.transport);
    this.customers = createClient(CustomerService, this.transport);
    this.sessions = createClient(SessionService, this.transport);
    this.events = createClient(EventService, this.transport);
  }

  /** A typed client for any other service of the API (e.g. ones added after this file). */
  client<S extends DescService>(service: S): Client<S> {
    return createClient(service, this.transport);
  }

  /**
   * The session's events from `fromOffset` on, then live, forever (until `signal` aborts or
   * the consumer stops iterating). Reconnects on UNAVAILABLE and when the stream ends
   * unexpectedly, with jittered exponential backoff, resuming after the last delivered event:
   * every matching event is yielded exactly once, in offset order. Other errors (NOT_FOUND when
   * the session does not exist or is deleted, INVALID_ARGUMENT, ...) are thrown.
   */
  async *follow(sessionId: string, options: FollowOptions = {}): AsyncGenerator<Event, void> {
    for await (const item of this.followItems(sessionId, options)) {
      if (item.kind === "event") yield item.event;
    }
  }

  /** Like {@link follow}, but also yields the stream's markers (caught up, heartbeats, ...). */
  async *followItems(
    sessionId: string,
    options: FollowOptions = {},
  ): AsyncGenerator<FollowItem, void> {
    const initialBackoff = options.initialBackoffMs ?? 200;
    const maxBackoff = options.maxBackoffMs ?? 10_000;
    const retryable = options.retryableCodes ?? [Code.Unavailable];
    let next = BigInt(options.fromOffset ?? 0);
    let failures = 0; // reconnects in a row without receiving anything

    // Our own controller, so that a consumer leaving the loop also cancels the open call.
    const abort = new AbortController();
    const onAbort = () => abort.abort(options.signal?.reason);
    if (options.signal?.aborted) return;
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        let error: ConnectError | undefined;
        try {
          const request = create(ListEventsRequestSchema, {
            sessionId,
            minOffset: next,
            kinds: options.kinds ?? [],
            sources: options.sources ?? [],
            follow: true,
          });
          const callOptions: CallOptions = { signal: abort.signal };
          for await (const response of this.events.listEvents(request, callOptions)) {
            failures = 0;
            for (const event of response.events) {
              if (event.offset < next) continue; // already delivered (e.g. replay after resume)
              next = event.offset + 1n;
              yield { kind: "event", event };
            }
            if (response.caughtUp) yield { kind: "caughtUp", nextOffset: next };
            if (response.fellBehind) yield { kind: "fellBehind" };
            if (response.heartbeat) {
              // Offsets below it are delivered or filtered out: resume there.
              if (response.heartbeat.nextOffset > next) next = response.heartbeat.nextOffset;
              yield {
                kind: "heartbeat",
                nextOffset: response.heartbeat.nextOffset,
                time: response.heartbeat.time,
              };
            }
          }
        } catch (e) {
          if (abort.signal.aborted) return;
          const ce = ConnectError.from(e);
          // connect-node reports a connection that drops mid-stream (server killed, network
          // gone) as CANCELED (HTTP/2 RST_STREAM CANCEL); we did not cancel, so it is a loss.
          if (!retryable.includes(ce.code) && ce.code !== Code.Canceled) throw ce;
          error = ce;
        }
        if (abort.signal.aborted) return;
        // A follow stream only ends on error; an end without one is unexpected: reconnect.
        failures += 1;
        if (options.maxRetries !== undefined && failures > options.maxRetries) {
          throw error ?? new ConnectError("follow stream ended unexpectedly", Code.Unavailable);
        }
        const ceiling = Math.min(maxBackoff, initialBackoff * 2 ** (failures - 1));
        const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
        const info: ReconnectInfo = { error, attempt: failures, delayMs, nextOffset: next };
        options.onReconnect?.(info);
        yield { kind: "reconnecting", info };
        if (!(await sleep(delayMs, abort.signal))) return;
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      abort.abort(); // cancels the open call, if any
    }
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
