// Smoke test of the TypeScript client against a live Baton server with authentication on
// (the cross-language scenario of clients/smoke-all.sh):
//   node dist/smoke.js HOST:PORT
// Reads BATON_SMOKE_INTEGRATION_KEY, BATON_SMOKE_OPERATOR_KEY, BATON_SMOKE_OPERATOR_ID and
// BATON_SMOKE_RESTART (a shell command that restarts the server on the same address).
// Prints one line per step, then "smoke typescript: ok"; exits 1 with a message on failure.
// Uses only the package's public API (./index.js).
import { execFile } from "node:child_process";

import {
  BatonClient,
  Code,
  EventKind,
  EventSource,
  HandoffChangeType,
  HandoffOutcome,
  HandoffState,
  customerTokenProvider,
  describeError,
} from "./index.js";
import type { Event, HandoffChange } from "./index.js";

const DEADLINE_MS = 90_000; // the whole scenario
const WAIT_MS = 30_000; // any single wait
const LANG = "typescript";

const started = Date.now();
const target = process.argv[2] ?? process.env.BATON_SMOKE_TARGET;
const env = (name: string): string => {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is not set`);
  return value;
};

function fail(message: string): never {
  console.error(`smoke ${LANG}: FAILED: ${message}`);
  process.exit(1);
}

function step(message: string): void {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${message}`);
}

function check(ok: boolean, message: string): void {
  if (!ok) fail(message);
}

/** Consumes an async iterator in the background; waits on its items with deadlines. */
class Collector<T> {
  readonly items: T[] = [];
  error: unknown = undefined;
  private wake: (() => void)[] = [];

  constructor(iterator: AsyncIterable<T>) {
    void (async () => {
      try {
        for await (const item of iterator) {
          this.items.push(item);
          this.notify();
        }
      } catch (e) {
        this.error = e;
        this.notify();
      }
    })();
  }

  private notify(): void {
    for (const wake of this.wake.splice(0)) wake();
  }

  /** The first item matching `predicate`; fails the smoke after `ms` or on a stream error. */
  async waitFor(what: string, predicate: (item: T) => boolean, ms = WAIT_MS): Promise<T> {
    const deadline = Math.min(Date.now() + ms, started + DEADLINE_MS);
    for (;;) {
      const found = this.items.find(predicate);
      if (found !== undefined) return found;
      if (this.error !== undefined) fail(`${what}: stream failed: ${String(this.error)}`);
      const left = deadline - Date.now();
      if (left <= 0) fail(`${what}: not seen within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

function sh(command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("sh", ["-c", command], { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command}: ${error.message}\n${stdout}${stderr}`));
      else resolve();
    });
  });
}

const text = (e: Event): string => (e.data.case === "message" ? e.data.value.text : "");

async function main(): Promise<void> {
  if (!target) fail("usage: smoke.js HOST:PORT (or BATON_SMOKE_TARGET)");
  const integrationKey = env("BATON_SMOKE_INTEGRATION_KEY");
  const operatorKey = env("BATON_SMOKE_OPERATOR_KEY");
  const operatorId = env("BATON_SMOKE_OPERATOR_ID");
  const restart = env("BATON_SMOKE_RESTART");
  const opts = { timeoutMs: WAIT_MS };
  const stop = new AbortController();
  // Short reconnect delays: the restart should be noticed and healed within seconds.
  const resume = { signal: stop.signal, initialBackoffMs: 100, maxBackoffMs: 1_000 };

  // 1. Integration client: agent, guideline, customer, session.
  const integration = new BatonClient({ target, credentials: integrationKey });
  const agent = (await integration.agents.createAgent({ agent: { name: `Smoke agent (${LANG})` } }, opts))
    .agent!;
  await integration.guidelines.createGuideline(
    {
      guideline: {
        agentId: agent.id,
        condition: "The customer asks for a human",
        action: "Tell the customer you are connecting them with a colleague",
        toolNames: ["initiate_human_handoff"],
        enabled: true,
      },
    },
    opts,
  );
  const customer = (
    await integration.customers.createCustomer({ customer: { name: `Smoke customer (${LANG})` } }, opts)
  ).customer!;
  const session = (
    await integration.sessions.createSession(
      { session: { agentId: agent.id, customerId: customer.id, title: `smoke ${LANG}` } },
      opts,
    )
  ).session!;
  step(`integration: agent ${agent.id}, customer ${customer.id}, session ${session.id}`);

  // 2. Customer client: tokens from a provider that issues them through the integration client
  //    (short-lived, so the client asks again while the smoke runs).
  let issued = 0;
  const customerClient = new BatonClient({
    target,
    // 2 s tokens, renewed a quarter of their lifetime early (the default refreshBeforeMs is
    // capped at that): 1.5 s after each issue. The restart alone takes longer, so the follow's
    // reconnect and the later posts run on a later token.
    credentials: customerTokenProvider(integration, customer.id, {
      ttlSeconds: 2,
      onIssue: () => issued++,
    }),
  });
  let followReconnects = 0;
  const follow = new Collector(
    customerClient.follow(session.id, { fromOffset: 0, ...resume, onReconnect: () => followReconnects++ }),
  );
  await follow.waitFor("customer follow: offset 0", (e) => e.offset === 0n);
  step(`customer: token issued by the provider, following ${session.id} from offset 0`);

  // 3. Operator: watch the inbox (before the customer asks, so the request arrives live).
  const operator = new BatonClient({ target, credentials: operatorKey });
  const inboxItems = new Collector(
    operator.watchHandoffItems({ operator: { id: operatorId, displayName: "Olga" }, ...resume }),
  );
  await inboxItems.waitFor("inbox: caught up", (i) => i.kind === "caughtUp");
  const changes = (): HandoffChange[] =>
    inboxItems.items.flatMap((i) => (i.kind === "change" ? [i.change] : []));

  const ask = (
    await customerClient.events.createEvent(
      {
        sessionId: session.id,
        kind: EventKind.MESSAGE,
        source: EventSource.CUSTOMER,
        data: { case: "message", value: { text: "Can I talk to a human please?" } },
      },
      opts,
    )
  ).event!;
  step(`customer: asked for a human (offset ${ask.offset})`);

  const requested = await inboxItems.waitFor(
    "inbox: PENDING handoff of the session",
    (i) =>
      i.kind === "change" && i.change.handoff?.sessionId === session.id &&
      i.change.handoff.state === HandoffState.PENDING,
  );
  const handoffId = requested.kind === "change" ? requested.change.handoff!.id : "";
  step(`operator: inbox shows PENDING handoff ${handoffId}`);

  const participant = { id: operatorId, displayName: "Olga" };
  const claimed = (await operator.handoffs.claimHandoff({ handoffId, operator: participant }, opts))
    .handoff!;
  check(claimed.state === HandoffState.CLAIMED, `claim: state ${HandoffState[claimed.state]}`);
  const humanText = "Hi, this is Olga from the support team.";
  await operator.events.createEvent(
    {
      sessionId: session.id,
      kind: EventKind.MESSAGE,
      source: EventSource.HUMAN_AGENT,
      data: { case: "message", value: { text: humanText, participant } },
    },
    opts,
  );
  const human = await follow.waitFor(
    "customer follow: the operator's message",
    (e) => e.source === EventSource.HUMAN_AGENT && text(e) === humanText,
  );
  const shown = human.data.case === "message" ? human.data.value.participant?.displayName : "";
  check(shown === "Olga", `operator message shows display name ${JSON.stringify(shown)}`);
  const released = (
    await operator.handoffs.releaseHandoff(
      { handoffId, operatorId, outcome: HandoffOutcome.RETURNED_TO_AI },
      opts,
    )
  ).handoff!;
  check(released.state === HandoffState.ENDED, `release: state ${HandoffState[released.state]}`);
  step("operator: claimed, wrote (seen by the customer), released to the AI");

  // 4. Back with the AI: it answers the next question.
  const order = (
    await customerClient.events.createEvent(
      {
        sessionId: session.id,
        kind: EventKind.MESSAGE,
        source: EventSource.CUSTOMER,
        data: { case: "message", value: { text: "Where is my order 12345?" } },
      },
      opts,
    )
  ).event!;
  const ai = await follow.waitFor(
    "customer follow: AI answer",
    (e) => e.offset > order.offset && e.source === EventSource.AI_AGENT && e.kind === EventKind.MESSAGE,
  );
  step(`customer: AI answered at offset ${ai.offset}: ${JSON.stringify(text(ai))}`);

  // 5. A wrong key: UNAUTHENTICATED, with an ErrorInfo reason.
  const wrong = new BatonClient({ target, credentials: "bk_key_0000000000000000_wrongwrongwrong" });
  try {
    await wrong.agents.listAgents({}, opts);
    fail("a wrong key was accepted");
  } catch (e) {
    const err = describeError(e);
    step(`wrong key: ${err.codeName}, reason ${err.reason}`);
    check(err.code === Code.Unauthenticated, `wrong key: expected UNAUTHENTICATED, got ${err.codeName}`);
    check(!!err.reason, "wrong key: no ErrorInfo reason");
  } finally {
    wrong.close();
  }

  // 6. Restart the server under the open follow and inbox watch. (The second request names
  //    "a human": the smoke server matches guidelines by shared words, and "a person" alone
  //    shares none with "The customer asks for a human".)
  const lastBefore = changes().at(-1)?.position ?? -1n;
  const reconnectsBefore = inboxItems.items.filter((i) => i.kind === "reconnecting").length;
  await sh(restart);
  step("server restarted");
  const still = (
    await customerClient.events.createEvent(
      {
        sessionId: session.id,
        kind: EventKind.MESSAGE,
        source: EventSource.CUSTOMER,
        data: { case: "message", value: { text: "Are you still there?" } },
      },
      opts,
    )
  ).event!;
  await follow.waitFor("customer follow: message after the restart", (e) => e.id === still.id);
  const again = (
    await customerClient.events.createEvent(
      {
        sessionId: session.id,
        kind: EventKind.MESSAGE,
        source: EventSource.CUSTOMER,
        data: { case: "message", value: { text: "I want to talk to a person, a human please" } },
      },
      opts,
    )
  ).event!;
  const after = await inboxItems.waitFor(
    "inbox: the new handoff change after the restart",
    (i) =>
      i.kind === "change" && i.change.position > lastBefore &&
      i.change.handoff?.sessionId === session.id && i.change.handoff.id !== handoffId,
  );
  await follow.waitFor("customer follow: second request for a human", (e) => e.id === again.id);
  check(
    inboxItems.items.filter((i) => i.kind === "reconnecting").length > reconnectsBefore,
    "inbox watch did not notice the restart",
  );
  check(followReconnects > 0, "the follow did not notice the restart");
  step(
    `after the restart: follow resumed, inbox shows ${
      after.kind === "change" ? HandoffChangeType[after.change.type] : ""
    } at position ${after.kind === "change" ? after.change.position : ""}`,
  );

  // Exactly once: the follow's offsets are those of a fresh read (customer view: staff-only
  // events are gaps), in order, with no duplicate and none missing.
  const fresh: bigint[] = [];
  for await (const r of customerClient.events.listEvents({ sessionId: session.id }, opts)) {
    fresh.push(...r.events.map((e) => e.offset));
  }
  const lastFresh = fresh.at(-1)!;
  await follow.waitFor("customer follow: caught up with a fresh read", (e) => e.offset >= lastFresh);
  const delivered = follow.items.map((e) => e.offset).filter((o) => o <= lastFresh);
  check(
    delivered.join(",") === fresh.join(","),
    `follow delivered offsets ${delivered.join(",")}, a fresh ListEvents has ${fresh.join(",")}`,
  );
  // The inbox: live changes (the OPEN snapshot shares one position) strictly increase.
  const live = changes().filter((c) => c.type !== HandoffChangeType.OPEN);
  for (let i = 1; i < live.length; i++) {
    check(
      live[i]!.position > live[i - 1]!.position,
      `inbox positions not strictly increasing: ${live.map((c) => c.position).join(",")}`,
    );
  }
  step(
    `exactly once: follow ${delivered.length} events (offsets 0..${lastFresh}), inbox ${live.length} ` +
      `changes with increasing positions; customer tokens issued: ${issued}`,
  );
  check(issued >= 2, `the token provider was called ${issued} time(s): no refresh`);

  stop.abort();
  for (const c of [integration, customerClient, operator]) c.close();
}

const watchdog = setTimeout(() => fail(`did not finish within ${DEADLINE_MS / 1000} s`), DEADLINE_MS);
try {
  await main();
} catch (e) {
  fail(e instanceof Error ? e.stack ?? e.message : String(e));
}
clearTimeout(watchdog);
console.log(`smoke ${LANG}: ok`);
process.exit(0);
