// The state of one session's conversation as a browser shows it, built from ListEvents
// responses by a pure reducer: events are kept once per offset (a stream that resumes from its
// last offset, or an event that arrives both as a CreateEvent answer and on the stream, never
// shows twice), AI reply deltas are assembled per turn, and statuses, mode changes and queue
// positions become the widget's visible state. No DOM here: unit-tested under node.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import {
  EventSource,
  Status,
  type Event,
  type MessageDelta,
} from "../gen/baton/v1/message_pb.js";
import type { ListEventsResponse } from "../gen/baton/v1/request_response_pb.js";

/** Who an entry of the conversation is from, as the widget draws it. */
export type Role = "customer" | "ai" | "human" | "system" | "note";

/** One line of the conversation, keyed by its log offset. */
export interface ChatItem {
  readonly offset: number;
  readonly role: Role;
  /** Name shown with the entry ("" for system notices). */
  readonly author: string;
  readonly text: string;
  readonly correlationId: string;
  readonly time: Date | undefined;
}

/** What the AI agent is doing on the current turn. */
export type Activity = "idle" | "thinking" | "typing";

/** Who answers the customer: the AI, nobody yet (queued), or a human. */
export type Phase = "ai" | "queued" | "human";

export interface QueueInfo {
  readonly position: number;
  readonly waitSeconds: number;
  readonly text: string;
}

/** An AI reply being streamed (deltas), replaced by the stored message when it lands. */
export interface Draft {
  readonly correlationId: string;
  readonly text: string;
  /** Index the next delta must carry; a delta with a lower one is a repeat. */
  readonly nextIndex: number;
  /** False when a delta was missed (the stored message will still arrive whole). */
  readonly complete: boolean;
}

export interface ConversationState {
  /** Entries sorted by offset, each offset once. */
  readonly items: readonly ChatItem[];
  /** Offsets already applied (events of every kind, shown or not). */
  readonly seen: ReadonlySet<number>;
  /** Resume point: every offset below it was delivered or skipped by the server's view. */
  readonly nextOffset: number;
  readonly caughtUp: boolean;
  readonly mode: "auto" | "manual";
  readonly phase: Phase;
  readonly queue: QueueInfo | null;
  /** Display name of the human agent who last wrote ("" when none or anonymous). */
  readonly operatorName: string;
  readonly activity: Activity;
  /** The turn the activity belongs to (correlation id of its customer message). */
  readonly turn: string;
  readonly drafts: readonly Draft[];
  /** Turns whose stored AI message arrived: late deltas for them are ignored. */
  readonly finishedTurns: ReadonlySet<string>;
}

export const initialConversation: ConversationState = {
  items: [],
  seen: new Set(),
  nextOffset: 0,
  caughtUp: false,
  mode: "auto",
  phase: "ai",
  queue: null,
  operatorName: "",
  activity: "idle",
  turn: "",
  drafts: [],
  finishedTurns: new Set(),
};

/** A conversation that starts reading at `offset` (a resumed widget that kept nothing). */
export function conversationFrom(offset: number): ConversationState {
  return { ...initialConversation, nextOffset: offset };
}

export const AI_NAME = "Virtual assistant";
export const TEAM_NAME = "Our team";

/** Applies one ListEvents stream message. */
export function applyResponse(
  state: ConversationState,
  response: ListEventsResponse,
): ConversationState {
  let next = state;
  for (const event of response.events) next = applyEvent(next, event);
  if (response.delta) next = applyDelta(next, response.delta);
  if (response.heartbeat) next = advance(next, Number(response.heartbeat.nextOffset));
  if (response.caughtUp) next = { ...next, caughtUp: true };
  if ((response.caughtUp || response.fellBehind) && response.nextOffset !== undefined) {
    next = advance(next, Number(response.nextOffset));
  }
  return next;
}

function advance(state: ConversationState, offset: number): ConversationState {
  return offset > state.nextOffset ? { ...state, nextOffset: offset } : state;
}

/** Applies one event; an offset already applied changes nothing. */
export function applyEvent(state: ConversationState, event: Event): ConversationState {
  const offset = Number(event.offset);
  if (state.seen.has(offset)) return state;
  const seen = new Set(state.seen);
  seen.add(offset);
  let next: ConversationState = {
    ...state,
    seen,
    nextOffset: Math.max(state.nextOffset, offset + 1),
  };
  const time = event.createdAt
    ? new Date(Number(event.createdAt.seconds) * 1000 + Math.floor(event.createdAt.nanos / 1e6))
    : undefined;
  const base = { offset, correlationId: event.correlationId, time };
  switch (event.data.case) {
    case "message": {
      const text = event.data.value.text;
      const displayName = event.data.value.participant?.displayName ?? "";
      switch (event.source) {
        case EventSource.CUSTOMER:
        case EventSource.CUSTOMER_UI:
          next = insert(next, { ...base, role: "customer", author: "You", text });
          // A new customer message starts a new turn in auto mode.
          if (next.mode === "auto") next = { ...next, turn: event.correlationId };
          break;
        case EventSource.AI_AGENT:
        case EventSource.HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT: {
          const role: Role = event.source === EventSource.AI_AGENT ? "ai" : "human";
          next = insert(next, { ...base, role, author: AI_NAME, text });
          next = finishTurn(next, event.correlationId);
          if (role === "human") next = { ...next, phase: "human", queue: null, operatorName: "" };
          break;
        }
        case EventSource.HUMAN_AGENT:
          next = insert(next, { ...base, role: "human", author: displayName || TEAM_NAME, text });
          next = { ...next, phase: "human", queue: null, operatorName: displayName };
          break;
        default:
          next = insert(next, { ...base, role: "system", author: "", text });
      }
      break;
    }
    case "status":
      next = applyStatus(next, event.correlationId, event.data.value.status);
      break;
    case "custom":
      next = applyCustom(next, base, event.data.value);
      break;
    case "tool": {
      const calls = event.data.value.toolCalls
        .map((call) => (call.error ? `${call.name} failed: ${call.error}` : `${call.name} ✓`))
        .join(", ");
      next = insert(next, { ...base, role: "note", author: "", text: `Tool: ${calls}` });
      break;
    }
    default:
      break;
  }
  return next;
}

function applyStatus(state: ConversationState, turn: string, status: Status): ConversationState {
  const terminal =
    status === Status.READY || status === Status.CANCELLED || status === Status.ERROR;
  // An old turn's end (e.g. "cancelled" after a newer message) must not stop the new one.
  if (terminal) {
    if (turn !== state.turn && state.turn !== "") return state;
    return {
      ...state,
      activity: "idle",
      drafts: state.drafts.filter((draft) => draft.correlationId !== turn),
    };
  }
  if (status === Status.ACKNOWLEDGED) {
    // In manual mode a message is only acknowledged: humans answer, no indicator.
    return { ...state, turn, activity: state.mode === "auto" ? "thinking" : "idle" };
  }
  if (status === Status.PROCESSING) return { ...state, turn, activity: "thinking" };
  if (status === Status.TYPING) return { ...state, turn, activity: "typing" };
  return state;
}

function applyCustom(
  state: ConversationState,
  base: Pick<ChatItem, "offset" | "correlationId" | "time">,
  data: JsonObject,
): ConversationState {
  const type = str(data["type"]);
  switch (type) {
    case "baton.session_mode_changed": {
      const mode = str(data["mode"]) === "manual" ? "manual" : "auto";
      const note = { ...base, role: "note" as const, author: "", text: `Mode: ${mode}` };
      if (mode === "auto") {
        return insert(
          { ...state, mode, phase: "ai", queue: null, operatorName: "", activity: "idle" },
          note,
        );
      }
      return insert(
        { ...state, mode, phase: state.phase === "ai" ? "queued" : state.phase, activity: "idle" },
        note,
      );
    }
    case "baton.handoff_queue_position":
      if (state.phase === "human") return state;
      return {
        ...state,
        phase: "queued",
        queue: {
          position: num(data["position"]),
          waitSeconds: num(data["estimated_wait_seconds"]),
          text: str(data["text"]),
        },
      };
    case "baton.handoff_claimed":
    case "baton.handoff_transferred": {
      const operator = data["operator"];
      const name =
        operator && typeof operator === "object" && !Array.isArray(operator)
          ? str(operator["display_name"])
          : "";
      return insert(
        { ...state, phase: "human", queue: null, operatorName: name || state.operatorName },
        { ...base, role: "note", author: "", text: handoffNote(type, data) },
      );
    }
    case "baton.handoff_ended":
      return insert(
        { ...state, queue: null },
        { ...base, role: "note", author: "", text: handoffNote(type, data) },
      );
    default:
      if (type.startsWith("baton.handoff_") || type === "baton.session_created") {
        return insert(state, { ...base, role: "note", author: "", text: handoffNote(type, data) });
      }
      return state;
  }
}

/** A one-line description of a staff-only lifecycle event (operator console). */
export function handoffNote(type: string, data: JsonObject): string {
  const operator = data["operator"];
  const who =
    operator && typeof operator === "object" && !Array.isArray(operator)
      ? str(operator["display_name"]) || str(operator["id"])
      : "";
  switch (type) {
    case "baton.session_created":
      return "Session started";
    case "baton.handoff_requested":
      return `Handoff requested${data["reason"] ? `: ${str(data["reason"])}` : ""}`;
    case "baton.handoff_claimed":
      return `Claimed by ${who || "an operator"}`;
    case "baton.handoff_transferred":
      return `Transferred to ${who || "another operator"}`;
    case "baton.handoff_offered":
      return "Offered to an operator";
    case "baton.handoff_offer_declined":
      return "Offer declined";
    case "baton.handoff_claim_timeout":
      return "Claim timeout: still waiting";
    case "baton.handoff_ended": {
      const outcome = str(data["outcome"]).replaceAll("_", " ");
      const note = str(data["note"]);
      return `Handoff ended${outcome ? ` (${outcome})` : ""}${note ? `: ${note}` : ""}`;
    }
    default:
      return type.replace(/^baton\./, "").replaceAll("_", " ");
  }
}

/** Assembles a streamed AI reply: deltas in index order, repeats dropped, gaps flagged. */
export function applyDelta(state: ConversationState, delta: MessageDelta): ConversationState {
  if (state.finishedTurns.has(delta.correlationId)) return state;
  const existing = state.drafts.find((draft) => draft.correlationId === delta.correlationId);
  const expected = existing?.nextIndex ?? 0;
  if (delta.index < expected) return state;
  const draft: Draft = {
    correlationId: delta.correlationId,
    text: (existing?.text ?? "") + delta.text,
    nextIndex: delta.index + 1,
    complete: (existing?.complete ?? true) && delta.index === expected,
  };
  const drafts = existing
    ? state.drafts.map((d) => (d === existing ? draft : d))
    : [...state.drafts, draft];
  return { ...state, drafts, activity: "typing", turn: delta.correlationId };
}

function finishTurn(state: ConversationState, turn: string): ConversationState {
  const finishedTurns = new Set(state.finishedTurns);
  finishedTurns.add(turn);
  return {
    ...state,
    finishedTurns,
    drafts: state.drafts.filter((draft) => draft.correlationId !== turn),
    activity: turn === state.turn ? "idle" : state.activity,
  };
}

function insert(state: ConversationState, item: ChatItem): ConversationState {
  const items = state.items;
  // Events arrive in offset order, so this is almost always an append.
  let at = items.length;
  while (at > 0 && items[at - 1]!.offset > item.offset) at--;
  if (at > 0 && items[at - 1]!.offset === item.offset) return state;
  return { ...state, items: [...items.slice(0, at), item, ...items.slice(at)] };
}

function str(value: JsonValue | undefined): string {
  return typeof value === "string" ? value : "";
}

function num(value: JsonValue | undefined): number {
  return typeof value === "number" ? value : Number(value ?? 0) || 0;
}

/** The line the widget's header shows. */
export function headline(state: ConversationState): string {
  switch (state.phase) {
    case "queued":
      // The queue banner under the header gives the place and the wait.
      return state.queue ? "Waiting for our team" : "Connecting you with our team…";
    case "human":
      return state.operatorName ? `${state.operatorName} (our team)` : "A member of our team";
    default:
      return AI_NAME;
  }
}

/** The typing indicator's words, or "" when nothing is going on. */
export function activityText(state: ConversationState): string {
  if (state.activity === "typing") return `${AI_NAME} is typing…`;
  if (state.activity === "thinking") return `${AI_NAME} is thinking…`;
  return "";
}
