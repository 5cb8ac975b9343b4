// The tool worker against a scripted ToolWorkerService on a real loopback HTTP/2 server
// (connect-node's adapter, gRPC protocol): each test plays the server's side of the protocol
// (accept, calls, cancel, heartbeats, refusals, stream ends) and checks what the worker sends.
// The real Baton server: clients/tool-workers-smoke.sh runs the examples against it.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import {
  BadRequestSchema,
  DrainTimeoutError,
  ToolWorker,
  ToolWorkerService,
  defineTool,
  fieldViolations,
  handOff,
  valueToJson,
} from "../dist/index.js";
import type {
  ServeToolsRequest,
  ServeToolsResponseSchema,
  ToolCallInfo,
  ToolCallResult,
  ToolWorkerOptions,
  WorkerReconnectInfo,
} from "../dist/index.js";
import { toCallResult } from "../dist/worker.js";

type Reply = MessageInitShape<typeof ServeToolsResponseSchema>;

/** The server's side of one stream, for a script. */
interface Side {
  /** The next message (heartbeats skipped); undefined once the worker half-closed. */
  next(): Promise<ServeToolsRequest | undefined>;
  /** The next message, heartbeats included. */
  nextAny(): Promise<ServeToolsRequest | undefined>;
  send(reply: Reply): void;
  accept(id: string, heartbeatMs?: number): Promise<ServeToolsRequest>;
  call(id: string, tool: string, args?: Record<string, unknown>, deadlineMs?: number): void;
  signal: AbortSignal;
  authorization: string | null;
}

type Script = (side: Side) => Promise<void>;

class Queue<T> {
  private items: T[] = [];
  private wake: (() => void) | undefined;
  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/** Serves ToolWorkerService; the n-th stream runs scripts[n] (the last one repeats). A script
 * that returns ends the stream OK, one that throws ends it with that error. */
async function serve(t: { after: (f: () => void) => void }, ...scripts: Script[]): Promise<{ target: string; streams: () => number }> {
  let n = 0;
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(ToolWorkerService, {
        async *serveTools(requests: AsyncIterable<ServeToolsRequest>, ctx: HandlerContext) {
          const script = scripts[Math.min(n++, scripts.length - 1)]!;
          const out = new Queue<Reply | { end: true; error?: unknown }>();
          const it = requests[Symbol.asyncIterator]();
          const side: Side = {
            async next() {
              for (;;) {
                const r = await it.next();
                if (r.done) return undefined;
                if (r.value.kind.case !== "heartbeat") return r.value;
              }
            },
            async nextAny() {
              const r = await it.next();
              return r.done ? undefined : r.value;
            },
            send: (reply) => out.push(reply),
            async accept(id, heartbeatMs = 60_000) {
              const declaration = await side.next();
              assert.equal(declaration?.kind.case, "declare");
              side.send({
                kind: {
                  case: "accepted",
                  value: { workerId: id, heartbeatInterval: { seconds: BigInt(Math.floor(heartbeatMs / 1000)), nanos: (heartbeatMs % 1000) * 1e6 } },
                },
              });
              return declaration!;
            },
            call(id, tool, args = {}, deadlineMs = 60_000) {
              const deadline = Date.now() + deadlineMs;
              side.send({
                kind: {
                  case: "call",
                  value: {
                    callId: id, tool, arguments: args as never, sessionId: "ses_1", agentId: "agt_1",
                    customerId: "cus_1", correlationId: "cor_1", attempt: 1,
                    deadline: { seconds: BigInt(Math.floor(deadline / 1000)), nanos: (deadline % 1000) * 1e6 },
                  },
                },
              });
            },
            signal: ctx.signal,
            authorization: ctx.requestHeader.get("authorization"),
          };
          script(side).then(
            () => out.push({ end: true }),
            (error: unknown) => out.push({ end: true, error }),
          );
          for await (const item of out) {
            if ("end" in item) {
              if (item.error !== undefined) throw item.error;
              return;
            }
            yield item;
          }
        },
      }),
  });
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    for (const s of sessions) s.destroy();
    server.close();
  });
  return { target: `127.0.0.1:${(server.address() as AddressInfo).port}`, streams: () => n };
}

const quiet = { info() {}, warn() {}, error() {} };

function worker(options: Partial<ToolWorkerOptions> & Pick<ToolWorkerOptions, "targets" | "tools">): ToolWorker {
  return new ToolWorker({ credentials: "bk_key_worker", logger: quiet, initialBackoffMs: 1, maxBackoffMs: 10, ...options });
}

/** Rejects after ms: every wait of these tests has a deadline. */
function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))),
  ]);
}

const orders = defineTool<{ order_id?: string }>({
  name: "check_order_status",
  description: "Looks up an order",
  parameters: { type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] },
  retrySafe: true,
  timeoutMs: 2_500,
  handler: async ({ order_id }, call) => {
    if (!order_id) throw new Error("no order number");
    return { data: { order: order_id, session: call.sessionId, attempt: call.attempt } };
  },
});

/** A tool that reports when it starts and waits for its signal or a release. */
function slow(started: (id: string) => void, release: Promise<void>, reasons: unknown[]) {
  return defineTool({
    name: "slow",
    parameters: { type: "object" },
    handler: (_args, call: ToolCallInfo) =>
      new Promise((resolve, reject) => {
        started(call.callId);
        call.signal.addEventListener("abort", () => {
          reasons.push(call.signal.reason);
          reject(call.signal.reason);
        });
        void release.then(() => resolve({ data: `done ${call.callId}` }));
      }),
  });
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

test("declares, serves calls, maps results and errors, drains on stop", async (t) => {
  const results: ToolCallResult[] = [];
  const gotAll = deferred();
  const seen: { declaration?: ServeToolsRequest; authorization?: string | null; tail: string[] } = { tail: [] };
  const { target } = await serve(t, async (s) => {
    seen.authorization = s.authorization;
    seen.declaration = await s.accept("w-1");
    s.call("c1", "check_order_status", { order_id: "12345" });
    s.call("c2", "check_order_status", {});
    s.call("c3", "refund");
    for (;;) {
      const m = await s.next();
      if (m === undefined) return void seen.tail.push("half-close");
      if (m.kind.case === "result") {
        results.push(m.kind.value);
        if (results.length === 3) gotAll.resolve();
      } else seen.tail.push(m.kind.case ?? "?");
    }
  });
  const w = worker({ targets: target, tools: [orders], name: "orders", maxConcurrentCalls: 4 });
  await within(w.start(), "accepted");
  assert.equal(w.workerIds.get(target), "w-1");
  await within(gotAll.promise, "three results");
  const byId = Object.fromEntries(results.map((r) => [r.callId, r]));
  assert.deepEqual(valueToJson(byId.c1!.data), { order: "12345", session: "ses_1", attempt: 1 });
  assert.equal(byId.c2!.error, "no order number");
  assert.match(byId.c3!.error, /does not serve tool "refund"/);
  await within(w.stop(), "stop");
  assert.deepEqual(seen.tail, ["drain", "half-close"]);
  assert.equal(seen.authorization, "Bearer bk_key_worker");
  const d = seen.declaration!.kind.case === "declare" ? seen.declaration!.kind.value : undefined;
  assert.equal(d?.workerName, "orders");
  assert.equal(d?.maxConcurrentCalls, 4);
  assert.equal(d?.tools[0]?.name, "check_order_status");
  assert.equal(d?.tools[0]?.retrySafe, true);
  assert.equal(d?.tools[0]?.timeout?.seconds, 2n);
  assert.equal(d?.tools[0]?.timeout?.nanos, 500_000_000);
  assert.deepEqual(d?.tools[0]?.parameters, orders.parameters);
});

test("a cancel aborts the handler's signal and its result is never sent", async (t) => {
  const reasons: unknown[] = [];
  const started: string[] = [];
  const startedWake = new Queue<string>();
  const release = deferred();
  const first = deferred<ToolCallResult | undefined>();
  const { target } = await serve(t, async (s) => {
    await s.accept("w-1");
    const it = startedWake[Symbol.asyncIterator]();
    s.call("c1", "slow");
    await it.next();
    s.send({ kind: { case: "cancel", value: { callId: "c1", reason: "deadline passed" } } });
    s.call("c2", "slow");
    await it.next();
    release.resolve();
    const m = await s.next();
    first.resolve(m?.kind.case === "result" ? m.kind.value : undefined);
    await new Promise((resolve) => s.signal.addEventListener("abort", resolve));
  });
  const tool = slow((id) => (started.push(id), startedWake.push(id)), release.promise, reasons);
  const w = worker({ targets: target, tools: [tool], maxConcurrentCalls: 2 });
  t.after(() => w.stop().catch(() => {}));
  await within(w.start(), "accepted");
  const r = await within(first.promise, "first result");
  assert.equal(r?.callId, "c2");
  assert.equal(valueToJson(r?.data), "done c2");
  assert.equal(reasons.length, 1);
  assert.match(String((reasons[0] as Error).message), /cancelled by the server: deadline passed/);
});

test("the call's deadline aborts the signal; a throwing handler fails only its call", async (t) => {
  const results = new Map<string, string>();
  const both = deferred();
  const { target } = await serve(t, async (s) => {
    await s.accept("w-1");
    s.call("c1", "wait_for_deadline", {}, 50);
    s.call("c2", "boom");
    while (results.size < 2) {
      const m = await s.next();
      if (m?.kind.case === "result") results.set(m.kind.value.callId, m.kind.value.error);
    }
    both.resolve();
    await new Promise((resolve) => s.signal.addEventListener("abort", resolve));
  });
  const waiter = defineTool({
    name: "wait_for_deadline",
    parameters: { type: "object" },
    handler: (_a, call) =>
      new Promise((_, reject) => {
        assert.ok(call.deadline && call.deadline.getTime() - Date.now() < 1_000);
        call.signal.addEventListener("abort", () => reject(call.signal.reason));
      }),
  });
  const boom = defineTool({
    name: "boom",
    parameters: { type: "object" },
    handler: () => {
      throw new TypeError("cannot read properties of undefined");
    },
  });
  const w = worker({ targets: target, tools: [waiter, boom], maxConcurrentCalls: 2 });
  t.after(() => w.stop().catch(() => {}));
  await within(w.start(), "accepted");
  await within(both.promise, "two results");
  assert.match(results.get("c1")!, /deadline passed/);
  assert.equal(results.get("c2"), "cannot read properties of undefined");
});

test("stop waits for calls in flight: drain, result, half-close", async (t) => {
  const order: string[] = [];
  const started = deferred<string>();
  const release = deferred();
  const { target } = await serve(t, async (s) => {
    await s.accept("w-1");
    s.call("c1", "slow");
    for (;;) {
      const m = await s.next();
      if (m === undefined) return void order.push("half-close");
      if (m.kind.case === "drain") {
        order.push("drain");
        release.resolve(); // the call finishes only after the drain notice
      }
      if (m.kind.case === "result") order.push(`result ${valueToJson(m.kind.value.data)}`);
    }
  });
  const w = worker({ targets: target, tools: [slow(started.resolve, release.promise, [])] });
  await within(w.start(), "accepted");
  await within(started.promise, "call started");
  await within(w.stop(), "stop");
  assert.deepEqual(order, ["drain", "result done c1", "half-close"]);
});

test("a drain out of grace aborts the stragglers and rejects with DrainTimeoutError", async (t) => {
  const reasons: unknown[] = [];
  const started = deferred<string>();
  let results = 0;
  const { target } = await serve(t, async (s) => {
    await s.accept("w-1");
    s.call("c1", "slow");
    for (;;) {
      const m = await s.next();
      if (m === undefined) return;
      if (m.kind.case === "result") results++;
    }
  });
  const w = worker({ targets: target, tools: [slow(started.resolve, new Promise(() => {}), reasons)], drainGraceMs: 100 });
  await within(w.start(), "accepted");
  await within(started.promise, "call started");
  await assert.rejects(within(w.stop(), "stop"), (e: unknown) => e instanceof DrainTimeoutError && e.callIds[0] === "c1");
  assert.ok(reasons[0] instanceof DrainTimeoutError);
  assert.equal(results, 0);
});

test("reconnects with backoff and declares again; a silent server is left after 3 heartbeats", async (t) => {
  const reconnects: WorkerReconnectInfo[] = [];
  const streams = new Queue<string>();
  const { target } = await serve(
    t,
    async (s) => {
      await s.accept("w-1");
      streams.push("first");
      throw new ConnectError("server shutting down", Code.Unavailable);
    },
    async () => {
      throw new ConnectError("still starting", Code.Unavailable); // before accepting
    },
    async (s) => {
      await s.accept("w-2", 50);
      streams.push("third");
      await new Promise((resolve) => s.signal.addEventListener("abort", resolve)); // silent
      streams.push("dropped");
    },
    async (s) => {
      await s.accept("w-3");
      streams.push("fourth");
      await new Promise((resolve) => s.signal.addEventListener("abort", resolve));
    },
  );
  const w = worker({ targets: target, tools: [orders], onReconnect: (i) => reconnects.push(i) });
  t.after(() => w.stop().catch(() => {}));
  void w.start();
  const it = streams[Symbol.asyncIterator]();
  for (const want of ["first", "third", "dropped", "fourth"]) {
    assert.equal((await within(it.next(), want)).value, want);
  }
  assert.deepEqual(reconnects.map((r) => r.attempt), [1, 2, 1]);
  assert.equal(reconnects[0]!.error.code, Code.Unavailable);
  assert.match(reconnects[2]!.error.message, /no message from the server/);
});

test("server heartbeats keep the stream; the worker sends its own at the interval", async (t) => {
  // 8 intervals of 100 ms (over twice the silence limit) with a heartbeat from the server each.
  const reconnects: WorkerReconnectInfo[] = [];
  const counted = deferred<number>();
  const { target } = await serve(t, async (s) => {
    await s.accept("w-1", 100);
    let fromWorker = 0;
    void (async () => {
      for (;;) {
        const m = await s.nextAny().catch(() => undefined); // the stream closes after the test
        if (m === undefined) return;
        if (m.kind.case === "heartbeat" && m.kind.value.time) fromWorker++;
      }
    })();
    for (let i = 0; i < 8; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      s.send({ kind: { case: "heartbeat", value: { time: { seconds: BigInt(Math.floor(Date.now() / 1000)) } } } });
    }
    counted.resolve(fromWorker);
    await new Promise((resolve) => s.signal.addEventListener("abort", resolve));
  });
  const w = worker({ targets: target, tools: [orders], onReconnect: (i) => reconnects.push(i) });
  t.after(() => w.stop().catch(() => {}));
  await within(w.start(), "accepted");
  const n = await within(counted.promise, "8 intervals");
  assert.ok(n >= 4, `${n} heartbeats from the worker in 8 intervals`);
  assert.deepEqual(reconnects, []);
});

for (const [name, refusal] of [
  ["invalid declaration", new ConnectError("bad declaration", Code.InvalidArgument, undefined, [
    { desc: BadRequestSchema, value: { fieldViolations: [{ field: "declare.tools[0].name", description: "taken" }] } },
  ])],
  ["a Python tool's name", new ConnectError("check_order_status is a Python tool here", Code.FailedPrecondition)],
  ["wrong role", new ConnectError("an integration key may not serve tools", Code.PermissionDenied)],
  ["unknown key", new ConnectError("unknown key", Code.Unauthenticated)],
] as const) {
  test(`a refusal (${name}) is not retried: start and done reject with it`, async (t) => {
    const server = await serve(t, async (s) => {
      await s.next();
      throw refusal;
    });
    const w = worker({ targets: server.target, tools: [orders] });
    await assert.rejects(within(w.start(), "start"), (e: unknown) => ConnectError.from(e).code === refusal.code);
    await assert.rejects(within(w.done, "done"), (e: unknown) => ConnectError.from(e).code === refusal.code);
    if (refusal.code === Code.InvalidArgument) {
      let caught: unknown;
      await w.done.catch((e: unknown) => (caught = e));
      assert.deepEqual(fieldViolations(caught).map((v) => v.field), ["declare.tools[0].name"]);
    }
    assert.equal(server.streams(), 1);
  });
}

test("every target gets a stream; start waits for all; a refusal at one drains the others", async (t) => {
  const gate = deferred();
  const drained = deferred();
  const a = await serve(t, async (s) => {
    await s.accept("a-1");
    for (;;) {
      const m = await s.next();
      if (m === undefined || m.kind.case === "drain") return drained.resolve();
    }
  });
  const b = await serve(t, async (s) => {
    await s.next();
    await gate.promise;
    throw new ConnectError("a Python tool here", Code.FailedPrecondition);
  });
  const w = worker({ targets: [a.target, b.target], tools: [orders] });
  let settled = false;
  const started = w.start().finally(() => (settled = true));
  await within(new Promise<void>((resolve) => {
    const poll = setInterval(() => w.workerIds.has(a.target) && (clearInterval(poll), resolve()), 5);
  }), "a accepted");
  assert.equal(settled, false, "start resolved before every target accepted");
  gate.resolve();
  await assert.rejects(within(started, "start"), (e: unknown) => ConnectError.from(e).code === Code.FailedPrecondition);
  await within(drained.promise, "a drained");
});

test("stop before any server answered ends quietly", async (t) => {
  const { target } = await serve(t, async (s) => {
    await s.next();
    await new Promise((resolve) => s.signal.addEventListener("abort", resolve)); // never answers
  });
  const w = worker({ targets: target, tools: [orders] });
  const started = w.start();
  await within(w.stop(), "stop");
  await assert.rejects(started, /stopped before every target accepted/);
  const never = worker({ targets: target, tools: [orders] });
  await never.stop();
  await assert.rejects(never.start(), /start\(\) after stop\(\)/);
});

test("defineTool and ToolWorker check what they are given", () => {
  const handler = async () => ({});
  assert.throws(() => defineTool({ name: "9lives", parameters: { type: "object" }, handler }), /letters, digits/);
  assert.throws(() => defineTool({ name: "a-b", parameters: { type: "object" }, handler }), /letters, digits/);
  assert.throws(() => defineTool({ name: "x", parameters: { type: "string" } as never, handler }), /type "object"/);
  assert.throws(() => defineTool({ name: "x", parameters: { type: "object" }, handler, timeoutMs: 600_001 }), /timeoutMs/);
  assert.throws(() => new ToolWorker({ targets: [], tools: [orders] }), /no targets/);
  assert.throws(() => new ToolWorker({ targets: "127.0.0.1:1", tools: [] }), /no tools/);
  assert.throws(() => new ToolWorker({ targets: "127.0.0.1:1", tools: [orders, orders] }), /twice/);
  assert.throws(() => new ToolWorker({ targets: "127.0.0.1:1", tools: [orders], maxConcurrentCalls: 0 }), /between 1 and 1000/);
  assert.throws(
    () => new ToolWorker({ targets: "127.0.0.1:1", tools: [{ name: "x", parameters: { type: "object" }, handler } as never] }),
    /defineTool/,
  );
});

test("results: data as JSON, control as strings, errors as messages", () => {
  const ok = toCallResult("c1", { result: { data: { order: "12345", at: new Date(0) }, control: handOff("asked") } });
  assert.deepEqual(valueToJson(ok.data), { order: "12345", at: "1970-01-01T00:00:00.000Z" });
  assert.deepEqual(ok.control, { mode: "manual", reason: "asked" });
  assert.equal(ok.error, "");
  assert.equal(valueToJson(toCallResult("c2", { result: {} }).data), null);
  assert.equal(toCallResult("c3", { error: new Error("CRM down") }).error, "CRM down");
  assert.equal(toCallResult("c4", { error: "plain string" }).error, "plain string");
  assert.equal(toCallResult("c5", { error: new Error("") }).error, "tool failed");
  assert.match(toCallResult("c6", { result: { data: { n: 1n } } }).error, /not JSON/);
  assert.deepEqual(handOff(), { mode: "manual" });
});
