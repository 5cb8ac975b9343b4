// The widget's event reducer: de-duplication by offset, delta assembly, status → UI state.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, type JsonObject } from "@bufbuild/protobuf";
import {
  EventKind,
  EventSchema,
  EventSource,
  MessageDeltaSchema,
  Status,
  type Event,
} from "../src/gen/baton/v1/message_pb.js";
import { ListEventsResponseSchema } from "../src/gen/baton/v1/request_response_pb.js";
import {
  activityText,
  applyDelta,
  applyEvent,
  applyResponse,
  conversationFrom,
  headline,
  initialConversation,
  type ConversationState,
} from "../src/shared/conversation.js";

function message(offset: number, source: EventSource, text: string, extra: Partial<Event> = {}): Event {
  return create(EventSchema, {
    offset: BigInt(offset),
    kind: EventKind.MESSAGE,
    source,
    correlationId: extra.correlationId ?? `c${offset}`,
    data: { case: "message", value: { text, participant: extra.data?.case === "message" ? extra.data.value.participant : undefined } },
  });
}

function status(offset: number, value: Status, correlationId: string): Event {
  return create(EventSchema, {
    offset: BigInt(offset),
    kind: EventKind.STATUS,
    source: EventSource.AI_AGENT,
    correlationId,
    data: { case: "status", value: { status: value } },
  });
}

function custom(offset: number, data: JsonObject): Event {
  return create(EventSchema, {
    offset: BigInt(offset),
    kind: EventKind.CUSTOM,
    source: EventSource.SYSTEM,
    correlationId: `c${offset}`,
    data: { case: "custom", value: data },
  });
}

function apply(state: ConversationState, ...events: Event[]): ConversationState {
  return events.reduce(applyEvent, state);
}

const texts = (state: ConversationState) => state.items.filter((i) => i.role !== "note").map((i) => i.text);

test("an offset delivered twice (CreateEvent answer, then the stream) shows once", () => {
  const hello = message(1, EventSource.CUSTOMER, "hello");
  const once = apply(initialConversation, hello);
  const twice = applyEvent(once, hello);
  assert.equal(twice, once, "the state object is unchanged");
  assert.deepEqual(texts(twice), ["hello"]);
  assert.equal(twice.nextOffset, 2);
});

test("a resumed stream repeating a batch adds nothing and keeps offset order", () => {
  const batch = [
    message(0, EventSource.CUSTOMER, "a"),
    message(1, EventSource.AI_AGENT, "b"),
    message(2, EventSource.CUSTOMER, "c"),
  ];
  let state = applyResponse(initialConversation, create(ListEventsResponseSchema, { events: batch }));
  state = applyResponse(state, create(ListEventsResponseSchema, { events: batch.slice(1) }));
  state = applyResponse(state, create(ListEventsResponseSchema, { events: [message(3, EventSource.AI_AGENT, "d")] }));
  assert.deepEqual(texts(state), ["a", "b", "c", "d"]);
  assert.deepEqual(state.items.map((i) => i.offset), [0, 1, 2, 3]);
  assert.equal(state.nextOffset, 4);
});

test("an event arriving out of order is inserted at its offset", () => {
  const state = apply(initialConversation, message(5, EventSource.CUSTOMER, "later"), message(3, EventSource.CUSTOMER, "earlier"));
  assert.deepEqual(state.items.map((i) => i.offset), [3, 5]);
  assert.equal(state.nextOffset, 6);
});

test("caught_up and heartbeats move the resume point past hidden (staff-only) offsets", () => {
  let state = conversationFrom(0);
  state = applyResponse(state, create(ListEventsResponseSchema, { events: [message(0, EventSource.CUSTOMER, "hi")] }));
  state = applyResponse(state, create(ListEventsResponseSchema, { caughtUp: true, nextOffset: 7n }));
  assert.equal(state.caughtUp, true);
  assert.equal(state.nextOffset, 7);
  state = applyResponse(state, create(ListEventsResponseSchema, { heartbeat: { nextOffset: 9n } }));
  assert.equal(state.nextOffset, 9);
  // A heartbeat never moves it back.
  state = applyResponse(state, create(ListEventsResponseSchema, { heartbeat: { nextOffset: 4n } }));
  assert.equal(state.nextOffset, 9);
});

test("deltas assemble in index order; repeats are dropped; the stored message replaces the draft", () => {
  const delta = (index: number, text: string) => create(MessageDeltaSchema, { correlationId: "t1", index, text });
  let state = apply(initialConversation, message(1, EventSource.CUSTOMER, "refund?", { correlationId: "t1" }));
  state = applyDelta(state, delta(0, "Refunds "));
  state = applyDelta(state, delta(1, "take "));
  state = applyDelta(state, delta(1, "take ")); // repeated
  state = applyDelta(state, delta(2, "5 days."));
  assert.equal(state.drafts.length, 1);
  assert.equal(state.drafts[0]!.text, "Refunds take 5 days.");
  assert.equal(state.drafts[0]!.complete, true);
  assert.equal(state.activity, "typing");
  state = applyEvent(state, message(4, EventSource.AI_AGENT, "Refunds take 5 days.", { correlationId: "t1" }));
  assert.equal(state.drafts.length, 0);
  assert.deepEqual(texts(state), ["refund?", "Refunds take 5 days."]);
  // A late delta of a finished turn does not bring a draft back.
  state = applyDelta(state, delta(3, " more"));
  assert.equal(state.drafts.length, 0);
});

test("a missed delta marks the draft incomplete (the stored message still arrives whole)", () => {
  let state = applyDelta(initialConversation, create(MessageDeltaSchema, { correlationId: "t", index: 0, text: "a" }));
  state = applyDelta(state, create(MessageDeltaSchema, { correlationId: "t", index: 2, text: "c" }));
  assert.equal(state.drafts[0]!.complete, false);
  assert.equal(state.drafts[0]!.nextIndex, 3);
});

test("statuses drive the typing indicator; an old turn's cancel does not stop the new one", () => {
  let state = apply(initialConversation, message(1, EventSource.CUSTOMER, "one", { correlationId: "t1" }));
  state = apply(state, status(2, Status.ACKNOWLEDGED, "t1"));
  assert.equal(state.activity, "thinking");
  state = apply(state, status(3, Status.PROCESSING, "t1"));
  assert.equal(activityText(state), "Virtual assistant is thinking…");
  state = apply(state, message(4, EventSource.CUSTOMER, "two", { correlationId: "t2" }));
  state = apply(state, status(5, Status.ACKNOWLEDGED, "t2"), status(6, Status.CANCELLED, "t1"));
  assert.equal(state.activity, "thinking", "t1's cancel is not t2's end");
  state = apply(state, status(7, Status.TYPING, "t2"));
  assert.equal(state.activity, "typing");
  state = apply(state, message(8, EventSource.AI_AGENT, "answer", { correlationId: "t2" }), status(9, Status.READY, "t2"));
  assert.equal(state.activity, "idle");
  assert.equal(activityText(state), "");
});

test("handoff: manual mode queues, the queue position shows, a human joins, then back to the AI", () => {
  let state = apply(initialConversation, message(1, EventSource.CUSTOMER, "a human please", { correlationId: "t1" }));
  state = apply(state, custom(2, { type: "baton.session_mode_changed", mode: "manual", previous_mode: "auto" }));
  assert.equal(state.mode, "manual");
  assert.equal(state.phase, "queued");
  assert.equal(headline(state), "Connecting you with our team…");
  state = apply(state, message(3, EventSource.SYSTEM, "I'm connecting you with a member of our team."));
  state = apply(
    state,
    custom(4, {
      type: "baton.handoff_queue_position",
      position: 2,
      estimated_wait_seconds: 240,
      text: "You are number 2 in the queue. Estimated wait: about 4 min.",
    }),
  );
  assert.deepEqual(state.queue, { position: 2, waitSeconds: 240, text: "You are number 2 in the queue. Estimated wait: about 4 min." });
  assert.equal(headline(state), "Waiting for our team");
  // Customer messages in manual mode are only acknowledged: no typing indicator.
  state = apply(state, message(5, EventSource.CUSTOMER, "hello?", { correlationId: "t5" }), status(6, Status.ACKNOWLEDGED, "t5"));
  assert.equal(state.activity, "idle");
  state = apply(state, message(7, EventSource.SYSTEM, "Olga has joined the conversation."));
  const olga = create(EventSchema, {
    offset: 8n,
    kind: EventKind.MESSAGE,
    source: EventSource.HUMAN_AGENT,
    correlationId: "c8",
    data: { case: "message", value: { text: "Hi, Olga here.", participant: { id: "", displayName: "Olga" } } },
  });
  state = apply(state, olga);
  assert.equal(state.phase, "human");
  assert.equal(state.queue, null);
  assert.equal(headline(state), "Olga (our team)");
  assert.equal(state.items.at(-1)!.author, "Olga");
  state = apply(state, custom(9, { type: "baton.session_mode_changed", mode: "auto", previous_mode: "manual" }));
  state = apply(state, message(10, EventSource.SYSTEM, "You're back with our virtual assistant."));
  assert.equal(state.phase, "ai");
  assert.equal(headline(state), "Virtual assistant");
  assert.deepEqual(
    state.items.filter((i) => i.role === "system").map((i) => i.text),
    ["I'm connecting you with a member of our team.", "Olga has joined the conversation.", "You're back with our virtual assistant."],
  );
});

test("staff view: a claim names the operator and ends the queue; lifecycle events become notes", () => {
  let state = apply(
    initialConversation,
    custom(0, { type: "baton.session_created" }),
    custom(1, { type: "baton.handoff_requested", reason: "asks for a human" }),
    custom(2, { type: "baton.handoff_queue_position", position: 1, estimated_wait_seconds: 120, text: "n1" }),
    custom(3, { type: "baton.handoff_claimed", operator: { id: "olga", display_name: "Olga" } }),
  );
  assert.equal(state.phase, "human");
  assert.equal(state.operatorName, "Olga");
  assert.equal(state.queue, null);
  state = apply(state, custom(4, { type: "baton.handoff_ended", outcome: "RETURNED_TO_AI", note: "solved" }));
  assert.deepEqual(
    state.items.map((i) => i.text),
    ["Session started", "Handoff requested: asks for a human", "Claimed by Olga", "Handoff ended (RETURNED TO AI): solved"],
  );
  assert.ok(state.items.every((i) => i.role === "note"));
});
