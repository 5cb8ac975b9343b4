// The console's conversation pane: one handoff's session history (live), its summary, and the
// operator's controls (claim, reply, transfer, release to "resolved" or back to the AI).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import {
  EventKind,
  EventSource,
  HandoffOutcome,
  HandoffRequester,
  HandoffState,
  type Handoff,
} from "../gen/baton/v1/message_pb.js";
import type { EventService, HandoffService } from "../gen/baton/v1/service_pb.js";
import {
  activityText,
  applyEvent,
  applyResponse,
  initialConversation,
  type ChatItem,
  type ConversationState,
} from "../shared/conversation.js";
import { clear, formatTime, h, pinToBottom, uid } from "../shared/dom.js";
import { keepStreaming, withRetry, type LinkState } from "../shared/stream.js";
import { describeError } from "../shared/transport.js";

export interface Operator {
  readonly id: string;
  readonly displayName: string;
}

export interface SessionPaneDeps {
  readonly events: Client<typeof EventService>;
  readonly handoffs: Client<typeof HandoffService>;
  readonly operator: Operator;
  /** Called when the operator goes back to the list (phone layout). */
  readonly onBack: () => void;
}

const STATE_NAMES: Record<HandoffState, string> = {
  [HandoffState.UNSPECIFIED]: "unknown",
  [HandoffState.PENDING]: "waiting",
  [HandoffState.CLAIMED]: "claimed",
  [HandoffState.ENDED]: "ended",
};

const REQUESTERS: Record<HandoffRequester, string> = {
  [HandoffRequester.UNSPECIFIED]: "",
  [HandoffRequester.TOOL]: "the AI agent",
  [HandoffRequester.EXTERNAL_SYSTEM]: "an external system",
  [HandoffRequester.CUSTOMER]: "the customer",
  [HandoffRequester.HUMAN_TAKEOVER]: "a human takeover",
};

export class SessionPane {
  readonly element: HTMLElement;
  private handoff: Handoff | undefined;
  private conversation: ConversationState = initialConversation;
  private follow: AbortController | undefined;
  private readonly rendered = new Map<number, HTMLElement>();
  private readonly pin: () => void;
  private readonly heading: HTMLElement;
  private readonly details: HTMLElement;
  private readonly log: HTMLElement;
  private readonly activity: HTMLElement;
  private readonly actions: HTMLElement;
  private readonly error: HTMLElement;
  private readonly link: HTMLElement;

  constructor(private readonly deps: SessionPaneDeps) {
    const headingId = uid("bc-session-title");
    this.heading = h("h2", { id: headingId, tabindex: -1 }, "No conversation selected");
    this.link = h("span", { class: "bc-link", "data-state": "idle" });
    this.details = h("div", { class: "bc-details" });
    this.log = h("ol", { class: "bc-log", role: "log", "aria-live": "polite", "aria-label": "History" });
    this.pin = pinToBottom(this.log);
    this.activity = h("p", { class: "bc-activity", "aria-live": "polite" });
    this.error = h("p", { class: "bc-error", role: "alert", hidden: true });
    this.actions = h("div", { class: "bc-actions" });
    this.element = h(
      "section",
      { class: "bc-session", "aria-labelledby": headingId, "data-empty": "true" },
      h(
        "div",
        { class: "bc-session-head" },
        h("button", { type: "button", class: "bc-back", onclick: () => deps.onBack() }, "← Inbox"),
        this.heading,
        this.link,
      ),
      this.details,
      this.log,
      this.activity,
      this.error,
      this.actions,
    );
  }

  get currentId(): string | undefined {
    return this.handoff?.id;
  }

  /** Shows a handoff (its session's history from offset 0, then live). */
  show(handoff: Handoff): void {
    const sameSession = this.handoff?.sessionId === handoff.sessionId;
    this.handoff = handoff;
    this.element.dataset["empty"] = "false";
    this.element.dataset["handoffId"] = handoff.id;
    this.hideError();
    if (!sameSession) {
      this.follow?.abort();
      this.conversation = initialConversation;
      this.rendered.clear();
      clear(this.log);
      this.startFollow(handoff.sessionId);
    }
    this.renderDetails();
    this.renderActions();
    this.heading.focus();
  }

  /** A newer picture of the shown handoff (inbox change or an RPC's answer). */
  refresh(handoff: Handoff): void {
    if (!this.handoff || handoff.id !== this.handoff.id) return;
    if (handoff.controlEpoch < this.handoff.controlEpoch) return;
    const actionsChanged =
      handoff.state !== this.handoff.state || handoff.operator?.id !== this.handoff.operator?.id;
    this.handoff = handoff;
    this.renderDetails();
    if (actionsChanged) this.renderActions();
  }

  close(): void {
    this.follow?.abort();
    this.follow = undefined;
    this.handoff = undefined;
  }

  private startFollow(sessionId: string): void {
    const stopper = new AbortController();
    this.follow = stopper;
    void keepStreaming({
      signal: stopper.signal,
      open: (signal) =>
        this.deps.events.listEvents(
          { sessionId, minOffset: BigInt(this.conversation.nextOffset), follow: true },
          { signal },
        ),
      onMessage: (response) => this.update(applyResponse(this.conversation, response)),
      onState: (state: LinkState, detail) => {
        this.link.dataset["state"] = state;
        this.link.textContent = state === "live" ? "" : state;
        if (state === "failed") this.showError(`History stopped: ${detail}`);
      },
    });
  }

  private update(next: ConversationState): void {
    if (next === this.conversation) return;
    this.conversation = next;
    for (const item of next.items) {
      if (this.rendered.has(item.offset)) continue;
      const element = renderItem(item);
      this.rendered.set(item.offset, element);
      this.log.append(element); // the stream delivers in offset order
    }
    this.activity.textContent = activityText(next);
    this.pin();
  }

  private renderDetails(): void {
    const handoff = this.handoff;
    if (!handoff) return;
    this.heading.textContent = handoff.reason || "Handoff";
    const requested = handoff.requestedAt ? timestampDate(handoff.requestedAt) : undefined;
    clear(this.details);
    const holder = handoff.operator?.displayName || handoff.operator?.id || "";
    const summary = handoff.summary
      ? h("details", { class: "bc-summary", open: true }, h("summary", {}, "Summary"), h("p", {}, handoff.summary))
      : "";
    this.details.append(
      h(
        "p",
        { class: "bc-meta" },
        h("span", { class: "bc-badge", "data-state": STATE_NAMES[handoff.state] }, STATE_NAMES[handoff.state]),
        handoff.state === HandoffState.PENDING && handoff.queuePosition > 0
          ? ` · number ${handoff.queuePosition} in the queue`
          : "",
        holder && handoff.state !== HandoffState.PENDING ? ` · held by ${holder}` : "",
        REQUESTERS[handoff.requestedBy] ? ` · asked by ${REQUESTERS[handoff.requestedBy]}` : "",
        requested ? ` · ${formatTime(requested)}` : "",
      ),
      summary,
    );
    this.element.dataset["state"] = STATE_NAMES[handoff.state];
  }

  private renderActions(): void {
    const handoff = this.handoff;
    clear(this.actions);
    if (!handoff) return;
    const me = this.deps.operator;
    if (handoff.state === HandoffState.PENDING) {
      this.actions.append(
        h("button", { type: "button", class: "bc-primary", onclick: () => this.claim() }, "Claim"),
      );
      return;
    }
    if (handoff.state !== HandoffState.CLAIMED) {
      this.actions.append(h("p", { class: "bc-ended" }, "This handoff has ended."));
      return;
    }
    if (handoff.operator?.id !== me.id) {
      const who = handoff.operator?.displayName || handoff.operator?.id || "another operator";
      this.actions.append(h("p", {}, `Held by ${who}.`));
      return;
    }
    const replyId = uid("bc-reply");
    const reply = h("textarea", { id: replyId, rows: 2, placeholder: "Write to the customer…" });
    reply.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        replyForm.requestSubmit();
      }
    });
    const replyForm = h(
      "form",
      { class: "bc-reply", onsubmit: (event: Event) => this.reply(event, reply) },
      h("label", { for: replyId }, `Reply as ${me.displayName || me.id}`),
      reply,
      h("button", { type: "submit", class: "bc-primary" }, "Send"),
    );
    const noteId = uid("bc-note");
    const note = h("input", { id: noteId, type: "text", placeholder: "Optional note" });
    const release = h(
      "fieldset",
      { class: "bc-release" },
      h("legend", {}, "Release"),
      h("label", { for: noteId }, "Note (context for the AI when it takes back)"),
      h(
        "div",
        { class: "bc-buttons" },
        note,
        h(
          "button",
          { type: "button", onclick: () => this.release(HandoffOutcome.RESOLVED_BY_HUMAN, note.value) },
          "Resolved",
        ),
        h(
          "button",
          { type: "button", onclick: () => this.release(HandoffOutcome.RETURNED_TO_AI, note.value) },
          "Back to the AI",
        ),
      ),
    );
    const toId = uid("bc-to");
    const toNameId = uid("bc-to-name");
    const to = h("input", { id: toId, type: "text", required: true, autocomplete: "off" });
    const toName = h("input", { id: toNameId, type: "text", autocomplete: "off" });
    const transfer = h(
      "details",
      { class: "bc-transfer" },
      h("summary", {}, "Transfer to another operator"),
      h(
        "form",
        {
          onsubmit: (event: Event) => {
            event.preventDefault();
            void this.transfer(to.value.trim(), toName.value.trim());
          },
        },
        h("label", { for: toId }, "Operator id"),
        to,
        h("label", { for: toNameId }, "Display name"),
        toName,
        h("button", { type: "submit" }, "Transfer"),
      ),
    );
    this.actions.append(replyForm, release, transfer);
  }

  private async claim(): Promise<void> {
    const handoff = this.handoff;
    if (!handoff) return;
    await this.act(async () => {
      const response = await this.deps.handoffs.claimHandoff({
        handoffId: handoff.id,
        operator: this.deps.operator,
        expectedEpoch: handoff.controlEpoch,
      });
      if (response.handoff) this.refresh(response.handoff);
    });
    this.actions.querySelector("textarea")?.focus();
  }

  private async reply(event: Event, input: HTMLTextAreaElement): Promise<void> {
    event.preventDefault();
    const text = input.value.trim();
    const handoff = this.handoff;
    if (!text || !handoff) return;
    input.value = "";
    const idempotencyKey = crypto.randomUUID();
    const ok = await this.act(async () => {
      const response = await withRetry(() =>
        this.deps.events.createEvent({
          sessionId: handoff.sessionId,
          kind: EventKind.MESSAGE,
          source: EventSource.HUMAN_AGENT,
          data: {
            case: "message",
            value: { text, participant: { id: this.deps.operator.id, displayName: this.deps.operator.displayName } },
          },
          idempotencyKey,
        }),
      );
      if (response.event) this.update(applyEvent(this.conversation, response.event));
    });
    if (!ok && !input.value) input.value = text;
    input.focus();
  }

  private async release(outcome: HandoffOutcome, note: string): Promise<void> {
    const handoff = this.handoff;
    if (!handoff) return;
    await this.act(async () => {
      const response = await this.deps.handoffs.releaseHandoff({
        handoffId: handoff.id,
        operatorId: this.deps.operator.id,
        outcome,
        note: note.trim(),
        expectedEpoch: handoff.controlEpoch,
      });
      if (response.handoff) this.refresh(response.handoff);
    });
  }

  private async transfer(toId: string, toName: string): Promise<void> {
    const handoff = this.handoff;
    if (!handoff || !toId) return;
    await this.act(async () => {
      const response = await this.deps.handoffs.transferHandoff({
        handoffId: handoff.id,
        fromOperatorId: this.deps.operator.id,
        toOperator: { id: toId, displayName: toName },
        expectedEpoch: handoff.controlEpoch,
      });
      if (response.handoff) this.refresh(response.handoff);
    });
  }

  /** Runs an operator action; a refusal is shown where the operator looks. */
  private async act(action: () => Promise<void>): Promise<boolean> {
    this.hideError();
    try {
      await action();
      return true;
    } catch (error) {
      this.showError(describeError(error));
      return false;
    }
  }

  private showError(text: string): void {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  private hideError(): void {
    this.error.hidden = true;
  }
}

const ROLE_LABEL: Record<ChatItem["role"], string> = {
  customer: "Customer",
  ai: "AI",
  human: "",
  system: "Baton",
  note: "",
};

function renderItem(item: ChatItem): HTMLElement {
  const author = item.role === "human" ? item.author : ROLE_LABEL[item.role];
  return h(
    "li",
    { class: `bc-item bc-${item.role}`, "data-offset": item.offset, "data-role": item.role },
    author ? h("span", { class: "bc-author" }, author) : null,
    h("p", { class: "bc-text" }, item.text),
    item.time ? h("time", { class: "bc-time", datetime: item.time.toISOString() }, formatTime(item.time)) : null,
  );
}
