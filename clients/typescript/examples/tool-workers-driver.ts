// The customer's side of the tool-workers example (clients/tool-workers-smoke.sh), against a
// server started with `--example-agent --example-agent-tools workers`:
//   BATON_SMOKE_INTEGRATION_KEY=... node dist-examples/tool-workers-driver.js HOST:PORT
// Waits until ListTools shows a connected worker for check_order_status and for
// initiate_human_handoff, then, as a customer of the example agent, asks for an order (the TOOL
// event must carry the Go worker's result) and then for a human (the TypeScript worker's
// result, the handoff request, the session in MANUAL mode). With `--expect-no-workers` it only
// waits until neither tool has a worker any more (after the workers drained). Every wait has a
// deadline; prints "tool workers driver: ..." lines, exits 1 naming what failed.
import {
  BatonClient,
  EventKind,
  EventSource,
  SessionMode,
  ToolOrigin,
  customerTokenProvider,
  describeError,
  valueToJson,
} from "@baton/client";
import type { Event, JsonValue, Tool } from "@baton/client";

const WAIT_MS = 30_000;
const POLL_MS = 100; // ListTools has no stream: poll it, each wait bounded by WAIT_MS
const TOOLS = ["check_order_status", "initiate_human_handoff"];
const EXAMPLE_AGENT = "Baton Support (example)";
const started = Date.now();

function say(message: string): void {
  console.log(`tool workers driver [${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s]: ${message}`);
}

function fail(message: string): never {
  console.error(`tool workers driver: FAILED: ${message}`);
  process.exit(1);
}

const target = process.argv.find((a, i) => i >= 2 && !a.startsWith("--")) ?? process.env.BATON_SMOKE_TARGET;
const key = process.env.BATON_SMOKE_INTEGRATION_KEY;
if (!target || !key) fail("usage: BATON_SMOKE_INTEGRATION_KEY=... tool-workers-driver.js HOST:PORT [--expect-no-workers]");
const integration = new BatonClient({ target, credentials: key });
const opts = { timeoutMs: WAIT_MS };

/** Polls ListTools until `done(tools)` holds, for at most WAIT_MS. */
async function waitForTools(what: string, done: (tools: Map<string, Tool>) => boolean): Promise<Map<string, Tool>> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const tools = new Map((await integration.tools.listTools({}, opts)).tools.map((t) => [t.name, t]));
    if (done(tools)) return tools;
    if (Date.now() > deadline) {
      const seen = TOOLS.map((n) => `${n}: ${tools.get(n)?.workers.map((w) => w.workerId).join(",") ?? "absent"}`);
      fail(`${what}: not within ${WAIT_MS} ms (${seen.join("; ")})`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Collects a session's events in the background; waits for one with a deadline. */
class Events {
  readonly items: Event[] = [];
  private error: unknown;
  private wake: (() => void) | undefined;
  constructor(iterator: AsyncIterable<Event>) {
    void (async () => {
      try {
        for await (const e of iterator) {
          this.items.push(e);
          this.wake?.();
        }
      } catch (e) {
        this.error = e;
        this.wake?.();
      }
    })();
  }
  async waitFor<T>(what: string, pick: (e: Event) => T | undefined): Promise<T> {
    const deadline = Date.now() + WAIT_MS;
    for (let seen = 0; ; ) {
      for (; seen < this.items.length; seen++) {
        const found = pick(this.items[seen]!);
        if (found !== undefined) return found;
      }
      if (this.error !== undefined) fail(`${what}: follow failed: ${describeError(this.error).message}`);
      const left = deadline - Date.now();
      if (left <= 0) fail(`${what}: not seen within ${WAIT_MS} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => (clearTimeout(timer), resolve());
      });
    }
  }
}

/** The result of the named tool's call in a TOOL event (fails on a call that failed). */
function toolResult(e: Event, name: string): Record<string, JsonValue> | undefined {
  if (e.data.case !== "tool") return undefined;
  for (const call of e.data.value.toolCalls) {
    if (call.name !== name) continue;
    if (call.error) fail(`${name} failed: ${call.error}`);
    return valueToJson(call.result) as Record<string, JsonValue>;
  }
  return undefined;
}

async function main(): Promise<void> {
  if (process.argv.includes("--expect-no-workers")) {
    await waitForTools("no worker left", (tools) => TOOLS.every((n) => (tools.get(n)?.workers.length ?? 0) === 0));
    say("after the drain, ListTools shows no worker for either tool");
    return;
  }
  const tools = await waitForTools("a worker for each tool", (t) =>
    TOOLS.every((n) => t.get(n)?.origin === ToolOrigin.WORKER && t.get(n)!.workers.length > 0),
  );
  for (const n of TOOLS) say(`${n} served by ${tools.get(n)!.workers.map((w) => w.workerId).join(", ")}`);

  let agentId: string | undefined;
  for (let token = ""; agentId === undefined; ) {
    const page = await integration.agents.listAgents({ pageSize: 1000, pageToken: token }, opts);
    agentId = page.agents.find((a) => a.name === EXAMPLE_AGENT)?.id;
    token = page.nextPageToken;
    if (!token) break;
  }
  if (!agentId) fail(`no agent named ${EXAMPLE_AGENT} (start the server with --example-agent)`);
  const customer = (await integration.customers.createCustomer({ customer: { name: "Tool workers customer" } }, opts)).customer!;
  const session = (
    await integration.sessions.createSession({ session: { agentId, customerId: customer.id, title: "tool workers" } }, opts)
  ).session!;
  const stop = new AbortController();
  const events = new Events(integration.follow(session.id, { signal: stop.signal }));
  const asCustomer = new BatonClient({ target, credentials: customerTokenProvider(integration, customer.id) });
  const write = (text: string) =>
    asCustomer.events.createEvent(
      { sessionId: session.id, kind: EventKind.MESSAGE, source: EventSource.CUSTOMER, data: { case: "message", value: { text } } },
      opts,
    );
  say(`session ${session.id} of the example agent`);

  await write("Where is my order 12345?");
  const order = await events.waitFor("check_order_status's TOOL event", (e) => toolResult(e, "check_order_status"));
  if (order.order !== "12345" || order.served_by !== "go" || order.status !== "in transit") {
    fail(`check_order_status returned ${JSON.stringify(order)}, want order 12345 in transit, served_by go`);
  }
  say(`check_order_status ran in the Go worker: ${JSON.stringify(order)}`);
  const reply = await events.waitFor("the AI's answer about the order", (e) =>
    e.source === EventSource.AI_AGENT && e.data.case === "message" && e.data.value.text.includes("12345") ? e.data.value.text : undefined,
  );
  say(`AI: ${reply}`);

  await write("I want to talk to a human please");
  const handoff = await events.waitFor("initiate_human_handoff's TOOL event", (e) => toolResult(e, "initiate_human_handoff"));
  if (handoff.handoff !== "requested" || handoff.served_by !== "typescript") {
    fail(`initiate_human_handoff returned ${JSON.stringify(handoff)}, want handoff requested, served_by typescript`);
  }
  say(`initiate_human_handoff ran in the TypeScript worker: ${JSON.stringify(handoff)}`);
  const requested = await events.waitFor("the handoff request", (e) =>
    e.data.case === "custom" && e.data.value.type === "baton.handoff_requested" ? String(e.data.value.handoff_id) : undefined,
  );
  const mode = (await integration.sessions.getSession({ sessionId: session.id }, opts)).session!.mode;
  if (mode !== SessionMode.MANUAL) fail(`session mode ${SessionMode[mode]} after the handoff, want MANUAL`);
  say(`handoff ${requested} opened; the session is MANUAL`);
  stop.abort();
  asCustomer.close();
}

main().then(
  () => {
    integration.close();
    say("ok");
  },
  (e: unknown) => fail(String(describeError(e).message || e)),
);
