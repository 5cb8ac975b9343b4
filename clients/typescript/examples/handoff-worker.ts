// Serves the example agent's initiate_human_handoff tool from TypeScript, over
// ToolWorkerService (the cross-language example of clients/tool-workers-smoke.sh):
//   BATON_WORKER_KEY=bk_key_... node dist-examples/handoff-worker.js 127.0.0.1:8800[,127.0.0.1:8801]
// It does what the Python tool of server/baton_server/examples/support.py does (data
// {handoff: "requested", reason}, control {mode: "manual"}: the server opens the handoff), and
// adds served_by: "typescript" so that a test can tell which worker ran the call. SIGTERM or
// SIGINT drains it (calls in flight finish, then it exits 0); a refused declaration or key exits 1.
// Imports the package by its name, as an application would.
import { ToolWorker, defineTool, describeError, handOff } from "@baton/client";

const targets = (process.argv[2] ?? process.env.BATON_WORKER_TARGETS ?? "").split(",").filter(Boolean);
const key = process.env.BATON_WORKER_KEY;
if (targets.length === 0 || !key) {
  console.error("usage: BATON_WORKER_KEY=... handoff-worker.js HOST:PORT[,HOST:PORT]");
  process.exit(2);
}

const initiateHumanHandoff = defineTool<{ reason: string }>({
  name: "initiate_human_handoff",
  description: "Hand the conversation to a human agent; the AI stops answering.",
  parameters: {
    type: "object",
    properties: { reason: { type: "string", description: "Why the customer wants a human" } },
    required: ["reason"],
    additionalProperties: false,
  },
  handler: async ({ reason }) => ({
    data: { handoff: "requested", reason, served_by: "typescript" },
    control: handOff(reason),
  }),
});

const worker = new ToolWorker({
  targets,
  credentials: key,
  name: "handoff-worker",
  maxConcurrentCalls: 8,
  tools: [initiateHumanHandoff],
});

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    worker.stop().catch(() => {}); // the outcome is reported by `done` below
  });
}

worker
  .start()
  .then(() => console.log(`handoff-worker: serving initiate_human_handoff as ${JSON.stringify([...worker.workerIds])}`))
  .catch(() => {}); // reported by `done`
worker.done.then(
  () => console.log("handoff-worker: drained, bye"),
  (e: unknown) => {
    const d = describeError(e);
    console.error(`handoff-worker: ${d.codeName}: ${d.message}`);
    process.exitCode = 1;
  },
);
