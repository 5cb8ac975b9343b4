// Smoke test of the TypeScript client against a live Baton server:
//   node dist/smoke.js HOST:PORT
// Prints one line per check and finally "N passed, N failed"; exits non-zero on any failure.
// With BATON_SMOKE_EXPECT_AI=1 it also waits for the AI agent's reply to the customer message.
// The same scenario is implemented by clients/go/cmd/smoke.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";

import { BatonClient } from "./client.js";
import { EventKind, EventSource, SessionMode } from "./gen/baton/v1/message_pb.js";
import type { Event } from "./gen/baton/v1/message_pb.js";

const WAIT_MS = 20_000; // deadline of every wait and every call
const target = process.argv[2] ?? process.env.BATON_TARGET ?? "127.0.0.1:8800";
const expectAI = process.env.BATON_SMOKE_EXPECT_AI === "1";

let passed = 0;
let failed = 0;
function check(name: string, ok: boolean, detail = ""): boolean {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "PASS" : "FAIL"} ${name}${!ok && detail ? `: ${detail}` : ""}`);
  return ok;
}

/** Consumes an event iterator in the background so that checks can wait for events. */
class Collector {
  readonly events: Event[] = [];
  error: unknown = undefined;
  private wake: (() => void)[] = [];

  constructor(iterator: AsyncIterable<Event>) {
    void (async () => {
      try {
        for await (const event of iterator) {
          this.events.push(event);
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

  /** The first collected event matching `predicate`, waiting up to `ms`; undefined on timeout. */
  async waitFor(predicate: (e: Event) => boolean, ms = WAIT_MS): Promise<Event | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.find(predicate);
      if (found || this.error !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
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

/** Polls `condition` every 10 ms until it holds (true) or `ms` pass (false). */
async function until(condition: () => boolean, ms = WAIT_MS): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/** Offsets in `events` are `from`, `from+1`, ... with no gap and no duplicate. */
function contiguous(events: Event[], from = 0n): string {
  let want = from;
  for (const e of events) {
    if (e.offset !== want) return `expected offset ${want}, got ${e.offset}`;
    want++;
  }
  return "";
}

/**
 * Breaks the first `failures` ListEvents streams with UNAVAILABLE after their first response,
 * and makes every reconnect ask for offset 0 again, so that the server replays events the
 * follower already delivered: follow must drop those and still deliver each event once.
 */
function faultInjector(failures: number): { interceptor: Interceptor; calls: () => number } {
  let calls = 0;
  const interceptor: Interceptor = (next) => async (req) => {
    if (!req.stream || req.method.name !== "ListEvents") return next(req);
    const call = ++calls;
    const message =
      call === 1
        ? req.message
        : (async function* () {
            for await (const m of req.message) yield { ...m, minOffset: 0n };
          })();
    const res = await next({ ...req, message });
    if (call > failures || !res.stream) return res;
    return {
      ...res,
      message: (async function* () {
        for await (const m of res.message) {
          yield m;
          break;
        }
        throw new ConnectError("injected by smoke test", Code.Unavailable);
      })(),
    };
  };
  return { interceptor, calls: () => calls };
}

async function main(): Promise<void> {
  const client = new BatonClient(target);
  const opts = { timeoutMs: WAIT_MS };
  const stop = new AbortController();
  try {
    // 1. Agent, customer, session.
    const agent = (await client.agents.createAgent({ agent: { name: "smoke-ts agent" } }, opts))
      .agent!;
    const customer = (
      await client.customers.createCustomer({ customer: { name: "smoke-ts customer" } }, opts)
    ).customer!;
    const session = (
      await client.sessions.createSession(
        { session: { agentId: agent.id, customerId: customer.id, title: "smoke-ts" } },
        opts,
      )
    ).session!;
    check(
      "create agent, customer and session",
      agent.id !== "" && customer.id !== "" && session.id !== "" &&
        session.mode === SessionMode.AUTO,
      `agent=${agent.id} customer=${customer.id} session=${session.id} mode=${session.mode}`,
    );

    // 2. Follow the session from offset 0: the log starts with a system event.
    const reconnects: string[] = [];
    const live = new Collector(
      client.follow(session.id, {
        fromOffset: 0,
        signal: stop.signal,
        onReconnect: (i) => reconnects.push(`${i.error?.code ?? "end"}@${i.nextOffset}`),
      }),
    );
    const first = await live.waitFor((e) => e.offset === 0n);
    check(
      "follow delivers the system event at offset 0",
      first?.source === EventSource.SYSTEM,
      `got ${first ? `source ${first.source}` : "nothing"} ${String(live.error ?? "")}`,
    );

    // 3. A customer message arrives on the stream.
    const customerEvent = (
      await client.events.createEvent(
        {
          sessionId: session.id,
          kind: EventKind.MESSAGE,
          source: EventSource.CUSTOMER,
          data: { case: "message", value: { text: "Hello from the TypeScript smoke test" } },
        },
        opts,
      )
    ).event!;
    const seen = await live.waitFor((e) => e.id === customerEvent.id);
    check(
      "customer message arrives on the stream",
      seen?.kind === EventKind.MESSAGE && seen.source === EventSource.CUSTOMER &&
        seen.offset === customerEvent.offset,
      `got ${seen ? `offset ${seen.offset}` : "nothing"} ${String(live.error ?? "")}`,
    );

    // 4. Optional: the AI agent answers it, in the same correlation.
    if (expectAI) {
      const reply = await live.waitFor(
        (e) =>
          e.kind === EventKind.MESSAGE && e.source === EventSource.AI_AGENT &&
          e.correlationId === customerEvent.id,
      );
      check(
        "AI reply arrives with the customer message's correlation id",
        reply !== undefined,
        `no AI message with correlation_id ${customerEvent.id} within ${WAIT_MS} ms`,
      );
    }

    // 5. Hand the session over to humans.
    const manual = (
      await client.sessions.updateSession(
        {
          sessionId: session.id,
          session: { mode: SessionMode.MANUAL },
          updateMask: { paths: ["mode"] },
        },
        opts,
      )
    ).session!;
    check("UpdateSession to MANUAL", manual.mode === SessionMode.MANUAL, `mode=${manual.mode}`);

    // 6. A human agent's message arrives with its participant.
    const participant = { id: "hum_smoke_ts", displayName: "Smoke Tester (TS)" };
    const humanEvent = (
      await client.events.createEvent(
        {
          sessionId: session.id,
          kind: EventKind.MESSAGE,
          source: EventSource.HUMAN_AGENT,
          data: { case: "message", value: { text: "A human here", participant } },
        },
        opts,
      )
    ).event!;
    const human = await live.waitFor((e) => e.id === humanEvent.id);
    const p = human?.data.case === "message" ? human.data.value.participant : undefined;
    check(
      "human agent message arrives with its participant",
      human?.source === EventSource.HUMAN_AGENT && p?.id === participant.id &&
        p.displayName === participant.displayName,
      `got ${human ? `participant ${JSON.stringify(p)}` : "nothing"} ${String(live.error ?? "")}`,
    );

    // 7. Back to the AI agent.
    const auto = (
      await client.sessions.updateSession(
        {
          sessionId: session.id,
          session: { mode: SessionMode.AUTO },
          updateMask: { paths: ["mode"] },
        },
        opts,
      )
    ).session!;
    check("UpdateSession back to AUTO", auto.mode === SessionMode.AUTO, `mode=${auto.mode}`);

    // 8. Error path: an unknown session is NOT_FOUND.
    try {
      await client.sessions.getSession({ sessionId: "ses_does_not_exist" }, opts);
      check("GetSession of an unknown id is NOT_FOUND", false, "call succeeded");
    } catch (e) {
      const code = ConnectError.from(e).code;
      check("GetSession of an unknown id is NOT_FOUND", code === Code.NotFound, `code ${Code[code]}`);
    }

    // 9. Resume: a follow whose streams break (and get replayed from 0) still delivers every
    //    offset once, in order, including an event appended after the reconnects.
    const faults = faultInjector(3);
    const flaky = new BatonClient({ target, interceptors: [faults.interceptor] });
    const resumed = new Collector(
      flaky.follow(session.id, { fromOffset: 0, signal: stop.signal, initialBackoffMs: 20 }),
    );
    const healthy = await until(() => faults.calls() > 3);
    const ping = (
      await client.events.createEvent(
        {
          sessionId: session.id,
          kind: EventKind.CUSTOM,
          source: EventSource.SYSTEM,
          data: {
            case: "custom",
            value: { fields: { type: { kind: { case: "stringValue", value: "smoke.ping" } } } },
          },
        },
        opts,
      )
    ).event!;
    const pinged = await resumed.waitFor((e) => e.id === ping.id);
    const upTo = resumed.events.filter((e) => e.offset <= ping.offset);
    const gap = contiguous(upTo);
    check(
      "resumed follow: offsets 0.. contiguous, no duplicates, across 3 reconnects",
      healthy && pinged !== undefined && gap === "" && upTo.length === Number(ping.offset) + 1,
      `${faults.calls()} calls, ${resumed.events.length} events, ping at ${ping.offset}; ${gap} ` +
        String(resumed.error ?? ""),
    );

    // 10. The live follower saw the same, without duplicates.
    await live.waitFor((e) => e.id === ping.id);
    const liveGap = contiguous(live.events);
    check(
      "live follow: offsets contiguous, no duplicates",
      liveGap === "" && live.events.length > Number(ping.offset) && live.error === undefined,
      `${liveGap} ${String(live.error ?? "")} reconnects=${reconnects.join(",")}`,
    );
  } catch (e) {
    check("scenario ran to the end", false, e instanceof Error ? e.message : String(e));
  } finally {
    stop.abort();
  }
}

const watchdog = setTimeout(() => {
  check("smoke test finished in time", false, "gave up after 120 s");
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(1);
}, 120_000);
await main();
clearTimeout(watchdog);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
