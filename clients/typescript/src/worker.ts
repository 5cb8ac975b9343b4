// Tool workers: serve an agent's tools from this process over ToolWorkerService.ServeTools.
// `defineTool` declares a tool (JSON Schema of its parameters, an async handler); `ToolWorker`
// opens one stream per server replica, declares the tools, runs the calls the server sends,
// answers each with a result, reconnects with backoff, and drains on `stop()`.
import { create, fromJson, toJson } from "@bufbuild/protobuf";
import type { JsonObject, JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema, timestampDate, timestampNow } from "@bufbuild/protobuf/wkt";
import type { Value } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { hostname } from "node:os";

import { BatonClient } from "./client.js";
import type { BatonClientOptions } from "./client.js";
import type { ToolCallRequest, ToolCallResult, ServeToolsRequestSchema, ServeToolsResponse } from "./gen/baton/v1/request_response_pb.js";
import { ToolCallResultSchema, ToolDeclarationSchema } from "./gen/baton/v1/request_response_pb.js";
import { ToolWorkerService } from "./gen/baton/v1/service_pb.js";
import { backoffDelayMs, sleep } from "./retry.js";
import { retryDelayMs } from "./errors.js";

/** A JSON Schema of an object: a tool's parameters. */
export interface JsonSchemaObject {
  type: "object";
  properties?: Record<string, JsonValue>;
  required?: string[];
  additionalProperties?: boolean | JsonObject;
  [keyword: string]: JsonValue | undefined;
}

/** What a tool's handler is told about the call it runs. */
export interface ToolCallInfo {
  /** The call's id (echoed in the result). */
  callId: string;
  /** The tool's name. */
  tool: string;
  /** The session whose turn made the call, its agent and customer. */
  sessionId: string;
  agentId: string;
  customerId: string;
  /** The turn (the customer message that started it). */
  correlationId: string;
  /** After it the server no longer waits; `signal` aborts then too. */
  deadline: Date | undefined;
  /** 1, or more when a retry-safe call is sent again after a worker disconnected. */
  attempt: number;
  /** Aborts when the server cancels the call (deadline passed, turn ended), at its deadline,
   * when the stream breaks, or when a drain runs out of grace. Its `reason` says which. */
  signal: AbortSignal;
  /** This worker's id on the server that sent the call, and that server's target. */
  workerId: string;
  target: string;
}

/** What a handler returns: `data` (any JSON value) is shown to the model and recorded in the
 * TOOL event; `control` steers the session: {@link handOff} opens a handoff. */
export interface ToolResult {
  data?: unknown;
  control?: Record<string, string>;
}

/** A tool's declaration and handler, as given to {@link defineTool}. */
export interface ToolDefinition<Args = JsonObject> {
  /** Letters, digits and `_`, starting with a letter, at most 64 characters. */
  name: string;
  /** What the tool does, for humans and for the language model. */
  description?: string;
  /** JSON Schema of the arguments (`type: "object"`). */
  parameters: JsonSchemaObject;
  /** How long a call may take (at most 10 minutes); default: the server's tool timeout. */
  timeoutMs?: number;
  /** Running a call twice does no harm: when this worker disconnects mid-call, the server sends
   * it to another worker instead of failing it. */
  retrySafe?: boolean;
  /** Runs one call. A thrown error becomes the call's error (the worker stays up). */
  handler: (args: Args, call: ToolCallInfo) => ToolResult | Promise<ToolResult>;
}

/** A tool ready for a {@link ToolWorker}, made by {@link defineTool}. */
// (Not `Tool`: that is the generated message ListTools returns.)
export type WorkerTool<Args = JsonObject> = Readonly<ToolDefinition<Args>> & { readonly kind: "baton.tool" };

const TOOL_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/**
 * Declares a tool. `Args` is the type of the arguments as the schema describes them (not
 * checked at run time: the server passes what the agent chose).
 *
 *     const orders = defineTool<{ order_id: string }>({
 *       name: "check_order_status",
 *       description: "Look up an order",
 *       parameters: { type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] },
 *       handler: async ({ order_id }, call) => ({ data: await lookUp(order_id, call.signal) }),
 *     });
 */
export function defineTool<Args = JsonObject>(definition: ToolDefinition<Args>): WorkerTool<Args> {
  const { name, parameters, timeoutMs, handler } = definition;
  if (!TOOL_NAME.test(name)) {
    throw new Error(`defineTool: name ${JSON.stringify(name)}: letters, digits and _, starting with a letter, at most 64 characters`);
  }
  if (typeof handler !== "function") throw new Error(`defineTool ${name}: handler must be a function`);
  if (parameters?.type !== "object") throw new Error(`defineTool ${name}: parameters must be a JSON Schema with type "object"`);
  if (timeoutMs !== undefined && !(timeoutMs > 0 && timeoutMs <= 600_000)) {
    throw new Error(`defineTool ${name}: timeoutMs ${timeoutMs}: between 1 and 600000`);
  }
  return Object.freeze({ ...definition, kind: "baton.tool" as const });
}

/** The control that hands the session to a human: `{ mode: "manual", reason }`. */
export function handOff(reason?: string): Record<string, string> {
  return reason ? { mode: "manual", reason } : { mode: "manual" };
}

/** What {@link ToolWorkerOptions.onReconnect} is told. */
export interface WorkerReconnectInfo {
  target: string;
  /** Why the stream ended. */
  error: ConnectError;
  /** 1 for the first reconnect after an accepted stream, 2 for the next in a row... */
  attempt: number;
  delayMs: number;
}

/** Where the worker's messages go (default: `console`). */
export type WorkerLogger = Pick<Console, "info" | "warn" | "error">;

/** A target: "host:port" (or a URL), or client options of its own (e.g. a transport). */
export type WorkerTarget = string | BatonClientOptions;

/** Options of {@link ToolWorker}. The connection options (credentials: the tool_worker key,
 * tls, insecure, keepalive) are those of {@link BatonClient} and apply to every target. */
export interface ToolWorkerOptions extends Omit<BatonClientOptions, "target" | "baseUrl" | "transport"> {
  /** The servers: one stream to each replica. */
  targets: WorkerTarget | WorkerTarget[];
  /** The tools served (at least one). */
  tools: WorkerTool<any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Shown by ListTools (the server makes it unique). Default: hostname-pid. */
  name?: string;
  /** The most calls run at once, 1 to 1000 (default 1). The server never sends more. */
  maxConcurrentCalls?: number;
  /** Reconnect delay: jittered exponential backoff, as `follow` (defaults 200 and 10 000). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long `stop()` waits for calls in flight before aborting them. Default 10 000. */
  drainGraceMs?: number;
  /** Called before each reconnect. */
  onReconnect?: (info: WorkerReconnectInfo) => void;
  logger?: WorkerLogger;
}

/** `stop()` ran out of grace: these calls were aborted and their results not sent. */
export class DrainTimeoutError extends Error {
  constructor(readonly callIds: string[]) {
    super(`tool worker: ${callIds.length} call(s) still running after the drain grace period`);
    this.name = "DrainTimeoutError";
  }
}

// Refusals the server would repeat: they end the worker instead of a reconnect.
const FATAL = new Set([
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.Unimplemented,
]);
const ACCEPT_TIMEOUT_MS = 30_000;

type Request = MessageInitShape<typeof ServeToolsRequestSchema>;

/** The request side of a stream: messages pushed by the worker, ended by `close()` (the
 * half-close). */
class Outbox implements AsyncIterable<Request> {
  private readonly queue: Request[] = [];
  private wake: (() => void) | undefined;
  closed = false;

  push(message: Request): void {
    if (this.closed) return;
    this.queue.push(message);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Request> {
    for (;;) {
      const next = this.queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/** The result message of a call, from what its handler returned or threw. */
export function toCallResult(callId: string, outcome: { result?: ToolResult; error?: unknown }): ToolCallResult {
  if (outcome.error !== undefined) {
    const e = outcome.error;
    const message = e instanceof Error ? e.message : typeof e === "string" ? e : JSON.stringify(e) ?? String(e);
    return create(ToolCallResultSchema, { callId, error: message || "tool failed" });
  }
  let json: JsonValue;
  try {
    json = JSON.parse(JSON.stringify(outcome.result?.data ?? null) ?? "null") as JsonValue;
  } catch (e) {
    return create(ToolCallResultSchema, { callId, error: `tool result is not JSON: ${(e as Error).message}` });
  }
  const control: Record<string, string> = {};
  for (const [k, v] of Object.entries(outcome.result?.control ?? {})) control[k] = String(v);
  return create(ToolCallResultSchema, { callId, data: fromJson(ValueSchema, json), control });
}

/**
 * Serves tools to Baton servers. `start()` connects to every target and resolves once each has
 * accepted the declaration; `stop()` drains (the server sends no new calls, calls in flight
 * finish within `drainGraceMs`, the stream is half-closed and ended by the server). A refused
 * declaration or key (INVALID_ARGUMENT with field violations, FAILED_PRECONDITION for a name
 * the server loads as a Python tool, PERMISSION_DENIED, UNAUTHENTICATED) ends the worker: the
 * pending `start()` and `stop()`/`done` reject with that ConnectError. Anything else
 * (UNAVAILABLE, a server shutting down, a dropped connection, three heartbeat intervals without
 * a word from the server) reconnects with jittered backoff and declares again.
 */
export class ToolWorker {
  private readonly tools = new Map<string, WorkerTool<any>>(); // eslint-disable-line @typescript-eslint/no-explicit-any
  private readonly targets: { name: string; client: BatonClient }[];
  private readonly declaration: Request;
  private readonly stopping = new AbortController();
  private readonly ids = new Map<string, string>();
  private readonly log: WorkerLogger;
  private started: Promise<void> | undefined;
  private resolveAccepted!: () => void;
  private rejectAccepted!: (e: unknown) => void;
  private readonly accepted: Promise<void>;
  private finished: Promise<void> | undefined;

  constructor(private readonly options: ToolWorkerOptions) {
    const { targets, tools, name, maxConcurrentCalls = 1, logger, ...clientOptions } = options;
    const list = Array.isArray(targets) ? targets : [targets];
    if (list.length === 0) throw new Error("ToolWorker: no targets");
    if (!tools?.length) throw new Error("ToolWorker: no tools");
    if (!(Number.isInteger(maxConcurrentCalls) && maxConcurrentCalls >= 1 && maxConcurrentCalls <= 1000)) {
      throw new Error(`ToolWorker: maxConcurrentCalls ${maxConcurrentCalls}: between 1 and 1000`);
    }
    for (const tool of tools) {
      if (tool?.kind !== "baton.tool") throw new Error("ToolWorker: tools must be made with defineTool");
      if (this.tools.has(tool.name)) throw new Error(`ToolWorker: tool ${tool.name} given twice`);
      this.tools.set(tool.name, tool);
    }
    this.log = logger ?? console;
    this.targets = list.map((t) => {
      const own = typeof t === "string" ? { target: t } : t;
      const client = new BatonClient({ ...clientOptions, ...own });
      return { name: typeof t === "string" ? t : (t.target ?? t.baseUrl ?? "transport"), client };
    });
    this.declaration = {
      kind: {
        case: "declare",
        value: {
          workerName: name ?? defaultName(),
          maxConcurrentCalls,
          tools: tools.map((t) =>
            create(ToolDeclarationSchema, {
              name: t.name,
              description: t.description ?? "",
              parameters: JSON.parse(JSON.stringify(t.parameters)) as JsonObject,
              timeout: t.timeoutMs === undefined ? undefined : {
                seconds: BigInt(Math.floor(t.timeoutMs / 1000)),
                nanos: Math.round((t.timeoutMs % 1000) * 1_000_000),
              },
              retrySafe: t.retrySafe ?? false,
            }),
          ),
        },
      },
    };
    this.accepted = new Promise<void>((resolve, reject) => {
      this.resolveAccepted = resolve;
      this.rejectAccepted = reject;
    });
    this.accepted.catch(() => {}); // reported through start()
  }

  /** Each target that accepted the worker, with the worker id it gave. */
  get workerIds(): ReadonlyMap<string, string> {
    return this.ids;
  }

  /** Connects (once) and resolves when every target has accepted the declaration; rejects if
   * the worker ends first (a refusal, or `stop()`). Keeps retrying while a server is down. */
  start(): Promise<void> {
    if (!this.started && this.stopping.signal.aborted) {
      return Promise.reject(new Error("tool worker: start() after stop()"));
    }
    if (!this.started) {
      this.finished = this.run();
      this.finished.catch(() => {}); // reported through done / stop()
      this.started = this.accepted;
    }
    return this.started;
  }

  /** Settles when the worker has ended: resolves after a clean drain, rejects with the refusal
   * that ended it or a {@link DrainTimeoutError}. */
  get done(): Promise<void> {
    return this.finished ?? Promise.resolve();
  }

  /** Drains and resolves when every stream is closed (see {@link done}). */
  stop(): Promise<void> {
    this.stopping.abort();
    return this.done;
  }

  private async run(): Promise<void> {
    let fatal: unknown;
    let drainTimeout: DrainTimeoutError | undefined;
    await Promise.all(
      this.targets.map(async (t) => {
        try {
          await this.serveTarget(t.name, t.client.client(ToolWorkerService));
        } catch (e) {
          if (e instanceof DrainTimeoutError) {
            drainTimeout = e;
          } else if (fatal === undefined) {
            fatal = e;
            this.log.error(`baton tool worker: ${t.name} refused the worker: ${String(e)}`);
            this.stopping.abort(); // the other targets drain
          }
        }
      }),
    );
    for (const t of this.targets) t.client.close();
    const error = fatal ?? drainTimeout;
    this.rejectAccepted(error ?? new Error("tool worker stopped before every target accepted it"));
    if (error !== undefined) throw error;
  }

  private markAccepted(target: string, workerId: string): void {
    this.ids.set(target, workerId);
    if (this.ids.size === this.targets.length) this.resolveAccepted();
  }

  /** Streams to one target until stop; throws a refusal or a DrainTimeoutError. */
  private async serveTarget(target: string, client: Client<typeof ToolWorkerService>): Promise<void> {
    let failures = 0;
    for (;;) {
      const { accepted, error } = await this.stream(target, client);
      if (error instanceof DrainTimeoutError) throw error;
      if (error !== undefined && FATAL.has(error.code)) throw error;
      if (this.stopping.signal.aborted) return;
      failures = accepted ? 1 : failures + 1;
      const err = error ?? new ConnectError("the server ended the stream", Code.Unavailable);
      const delayMs = Math.max(
        backoffDelayMs(failures, {
          initialBackoffMs: this.options.initialBackoffMs ?? 200,
          maxBackoffMs: this.options.maxBackoffMs ?? 10_000,
        }),
        retryDelayMs(err) ?? 0,
      );
      this.log.warn(`baton tool worker: stream to ${target} ended (${err.message}); reconnecting in ${delayMs} ms`);
      this.options.onReconnect?.({ target, error: err, attempt: failures, delayMs });
      if (!(await sleep(delayMs, this.stopping.signal))) return;
    }
  }

  /** One stream: declare, serve calls, drain on stop. */
  private async stream(
    target: string,
    client: Client<typeof ToolWorkerService>,
  ): Promise<{ accepted: boolean; error?: ConnectError | DrainTimeoutError }> {
    const stream = new AbortController();
    const handlers = new AbortController(); // aborts every call of this stream
    const outbox = new Outbox();
    outbox.push(this.declaration);
    const calls = new Map<string, { abort: AbortController; dropped: boolean; done: Promise<void> }>();
    let heard = Date.now();
    let workerId = "";
    let accepted = false;
    let heartbeat: NodeJS.Timeout | undefined;

    // Until accepted, stop just abandons the stream; a silent server is given up on.
    const onStop = () => {
      if (!accepted) stream.abort(new ConnectError("tool worker stopping", Code.Canceled));
    };
    this.stopping.signal.addEventListener("abort", onStop, { once: true });
    const acceptTimer = setTimeout(
      () => stream.abort(new ConnectError(`no answer to the declaration within ${ACCEPT_TIMEOUT_MS} ms`, Code.Unavailable)),
      ACCEPT_TIMEOUT_MS,
    );

    const send = (message: Request) => outbox.push(message);
    const startCall = (req: ToolCallRequest) => {
      const abort = new AbortController();
      const onAbort = () => abort.abort(handlers.signal.reason);
      handlers.signal.addEventListener("abort", onAbort, { once: true });
      const deadline = req.deadline ? timestampDate(req.deadline) : undefined;
      const timer = deadline === undefined ? undefined : setTimeout(
        () => abort.abort(new ConnectError("the call's deadline passed", Code.DeadlineExceeded)),
        Math.max(0, deadline.getTime() - Date.now()),
      );
      const entry = { abort, dropped: false, done: Promise.resolve() };
      calls.set(req.callId, entry);
      entry.done = (async () => {
        let outcome: { result?: ToolResult; error?: unknown };
        try {
          const tool = this.tools.get(req.tool);
          if (!tool) throw new Error(`this worker does not serve tool ${JSON.stringify(req.tool)}`);
          const info: ToolCallInfo = {
            callId: req.callId,
            tool: req.tool,
            sessionId: req.sessionId,
            agentId: req.agentId,
            customerId: req.customerId,
            correlationId: req.correlationId,
            deadline,
            attempt: req.attempt,
            signal: abort.signal,
            workerId,
            target,
          };
          outcome = { result: (await tool.handler(req.arguments ?? {}, info)) ?? {} };
        } catch (e) {
          outcome = { error: e };
        } finally {
          clearTimeout(timer);
          handlers.signal.removeEventListener("abort", onAbort);
          calls.delete(req.callId);
        }
        if (entry.dropped || handlers.signal.aborted) return; // nobody waits for it any more
        send({ kind: { case: "result", value: toCallResult(req.callId, outcome) } });
      })();
    };

    const receive = async (messages: AsyncIterable<ServeToolsResponse>): Promise<ConnectError | undefined> => {
      try {
        for await (const message of messages) {
          heard = Date.now();
          switch (message.kind.case) {
            case "accepted": {
              if (accepted) break;
              accepted = true;
              clearTimeout(acceptTimer);
              workerId = message.kind.value.workerId;
              const hb = message.kind.value.heartbeatInterval;
              const intervalMs = hb ? Number(hb.seconds) * 1000 + hb.nanos / 1e6 : 15_000;
              heartbeat = setInterval(() => {
                if (Date.now() - heard > 3 * intervalMs) {
                  stream.abort(new ConnectError(`no message from the server for ${Date.now() - heard} ms`, Code.Unavailable));
                  return;
                }
                send({ kind: { case: "heartbeat", value: { time: timestampNow() } } });
              }, intervalMs);
              this.markAccepted(target, workerId);
              this.log.info(`baton tool worker: accepted by ${target} as ${workerId}`);
              if (this.stopping.signal.aborted) acceptedThenStopped();
              break;
            }
            case "call":
              startCall(message.kind.value);
              break;
            case "cancel": {
              const call = calls.get(message.kind.value.callId);
              if (call) {
                call.dropped = true;
                call.abort.abort(new ConnectError(`cancelled by the server: ${message.kind.value.reason}`, Code.Canceled));
              }
              break;
            }
          }
        }
        return undefined;
      } catch (e) {
        if (stream.signal.aborted && stream.signal.reason instanceof ConnectError) return stream.signal.reason;
        return ConnectError.from(e);
      }
    };

    let wakeStop: () => void = () => {};
    const stopped = new Promise<void>((resolve) => (wakeStop = resolve));
    const acceptedThenStopped = () => wakeStop();
    const onStopAccepted = () => {
      if (accepted) wakeStop();
    };
    this.stopping.signal.addEventListener("abort", onStopAccepted, { once: true });

    const ended = receive(client.serveTools(outbox, { signal: stream.signal }));
    try {
      const first = await Promise.race([ended.then((error) => ({ error })), stopped.then(() => undefined)]);
      if (first !== undefined) {
        // The stream ended by itself: calls can no longer be answered.
        handlers.abort(first.error ?? new ConnectError("stream ended", Code.Unavailable));
        return { accepted, error: first.error };
      }
      return { accepted, error: await this.drain(target, workerId, send, outbox, calls, ended, handlers, stream) };
    } finally {
      clearTimeout(acceptTimer);
      clearInterval(heartbeat);
      this.stopping.signal.removeEventListener("abort", onStop);
      this.stopping.signal.removeEventListener("abort", onStopAccepted);
      stream.abort();
    }
  }

  private async drain(
    target: string,
    workerId: string,
    send: (m: Request) => void,
    outbox: Outbox,
    calls: Map<string, { abort: AbortController; dropped: boolean; done: Promise<void> }>,
    ended: Promise<ConnectError | undefined>,
    handlers: AbortController,
    stream: AbortController,
  ): Promise<DrainTimeoutError | undefined> {
    const graceMs = this.options.drainGraceMs ?? 10_000;
    send({ kind: { case: "drain", value: {} } });
    // Calls may still arrive until the server has read the drain notice: wait until none runs.
    const idle = (async () => {
      while (calls.size > 0) await Promise.all([...calls.values()].map((c) => c.done));
    })();
    const grace = new AbortController();
    const timeout = sleep(graceMs, grace.signal);
    let result: DrainTimeoutError | undefined;
    const first = await Promise.race([idle.then(() => "idle" as const), ended.then(() => "ended" as const), timeout.then(() => "grace" as const)]);
    if (first === "ended") {
      handlers.abort(new ConnectError("the server ended the stream", Code.Unavailable));
      grace.abort();
      return undefined;
    }
    if (first === "grace") {
      const ids = [...calls.keys()];
      this.log.warn(`baton tool worker: drain grace over at ${target}, aborting ${ids.length} call(s)`);
      handlers.abort(new DrainTimeoutError(ids));
      result = new DrainTimeoutError(ids);
    }
    grace.abort();
    outbox.close(); // half-close: the server ends the stream
    const closeGrace = new AbortController();
    const closed = await Promise.race([
      ended.then(() => true),
      sleep(graceMs, closeGrace.signal).then(() => false),
    ]);
    closeGrace.abort();
    if (!closed) stream.abort(new ConnectError("the server did not end the stream after the half-close", Code.DeadlineExceeded));
    this.log.info(`baton tool worker: drained ${target} (${workerId})`);
    return result;
  }
}

function defaultName(): string {
  return `${hostname() || "node"}-${process.pid}`;
}

/** The JSON of a google.protobuf.Value (e.g. a TOOL event's `result`); null when unset. */
export function valueToJson(value: Value | undefined): JsonValue {
  return value === undefined ? null : toJson(ValueSchema, value);
}
