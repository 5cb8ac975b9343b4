// The embeddable customer chat widget: BatonWidget.mount(element, options).
import { createClient, type Client } from "@connectrpc/connect";
import { EventKind, EventSource } from "../gen/baton/v1/message_pb.js";
import { EventService, SessionService } from "../gen/baton/v1/service_pb.js";
import {
  activityText,
  applyEvent,
  applyResponse,
  headline,
  initialConversation,
  type ChatItem,
  type ConversationState,
} from "../shared/conversation.js";
import { clear, formatTime, h, pinToBottom, uid } from "../shared/dom.js";
import { keepStreaming, withRetry, type LinkState } from "../shared/stream.js";
import {
  Credentials,
  describeError,
  isUnauthenticated,
  makeTransport,
  type CredentialProvider,
  type Protocol,
} from "../shared/transport.js";
import css from "./widget.css";

export interface WidgetOptions {
  /** Where `baton serve --http-port` answers, e.g. "https://chat.example.com". */
  baseUrl: string;
  /** A customer token (AuthService.IssueCustomerToken), or… */
  token?: string;
  /** …a function that fetches a fresh one from your backend (called again after it expires). */
  tokenProvider?: CredentialProvider;
  /** Resume this session; without it the widget resumes the one it remembers or starts one. */
  sessionId?: string;
  /** The agent of a new session (required unless `sessionId` is given or remembered). */
  agentId?: string;
  /** The customer; by default read from the token's `sub` claim. */
  customerId?: string;
  /** "connect" (default) or "grpc-web". */
  protocol?: Protocol;
  /** Remember the session in localStorage so a reload resumes it (default true). */
  remember?: boolean;
  /** Heading of the widget. */
  title?: string;
  /** Called once the session is known (started or resumed). */
  onSession?: (sessionId: string) => void;
  /** Add the widget's stylesheet to the page (default true). */
  injectStyles?: boolean;
}

export interface WidgetHandle {
  /** The session id, once started or resumed. */
  readonly session: Promise<string>;
  unmount(): void;
}

export function mount(element: HTMLElement, options: WidgetOptions): WidgetHandle {
  const widget = new ChatWidget(element, options);
  return { session: widget.start(), unmount: () => widget.stop() };
}

/** The `sub` claim of a JWT, without verifying it (the server does). */
export function tokenSubject(token: string): string {
  const payload = token.split(".")[1];
  if (!payload) return "";
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === "string" ? sub : "";
  } catch {
    return "";
  }
}

class ChatWidget {
  private state: ConversationState = initialConversation;
  private readonly stopper = new AbortController();
  private readonly credentials: Credentials;
  private readonly fatal: (error: unknown) => boolean;
  private readonly events: Client<typeof EventService>;
  private readonly sessions: Client<typeof SessionService>;
  private sessionId = "";
  private readonly rendered = new Map<number, HTMLElement>();
  private readonly pin: () => void;
  // Elements
  private readonly root: HTMLElement;
  private readonly status: HTMLElement;
  private readonly link: HTMLElement;
  private readonly queue: HTMLElement;
  private readonly log: HTMLElement;
  private readonly draft: HTMLElement;
  private readonly activity: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly send: HTMLButtonElement;
  private readonly error: HTMLElement;

  constructor(
    host: HTMLElement,
    private readonly options: WidgetOptions,
  ) {
    const token = options.token;
    const provider = options.tokenProvider ?? (token ? () => token : undefined);
    if (!provider) throw new Error("BatonWidget.mount: give `token` or `tokenProvider`");
    // A fixed token cannot get better by retrying; a provider is asked for a fresh one.
    this.fatal = options.tokenProvider ? () => false : isUnauthenticated;
    this.credentials = new Credentials(provider);
    const transport = makeTransport(options.baseUrl, this.credentials, options.protocol);
    this.events = createClient(EventService, transport);
    this.sessions = createClient(SessionService, transport);
    if (options.injectStyles !== false) injectStyles();

    const titleId = uid("bw-title");
    const inputId = uid("bw-input");
    this.status = h("p", { class: "bw-status", role: "status", "data-phase": "ai" });
    this.link = h("span", { class: "bw-link", "data-state": "connecting" }, "Connecting…");
    this.queue = h("div", { class: "bw-queue", role: "status", hidden: true });
    this.log = h("ol", { class: "bw-log", role: "log", "aria-live": "polite", "aria-labelledby": titleId });
    this.draft = h("li", { class: "bw-item bw-ai bw-draft", hidden: true });
    this.pin = pinToBottom(this.log);
    this.log.append(this.draft);
    this.activity = h("p", { class: "bw-activity", "aria-live": "polite" });
    this.error = h("p", { class: "bw-error", role: "alert", hidden: true });
    this.input = h("textarea", {
      id: inputId,
      rows: 2,
      placeholder: "Type your message…",
      autocomplete: "off",
      disabled: true,
    });
    this.send = h("button", { type: "submit", class: "bw-send", disabled: true }, "Send");
    const form = h(
      "form",
      { class: "bw-composer", onsubmit: (event: Event) => this.onSubmit(event) },
      h("label", { for: inputId, class: "bw-sr-only" }, "Your message"),
      this.input,
      this.send,
    );
    this.input.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter starts a new line.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    this.root = h(
      "section",
      { class: "baton-widget", "aria-labelledby": titleId, "data-link": "connecting" },
      h(
        "header",
        { class: "bw-header" },
        h("h2", { id: titleId, class: "bw-title" }, options.title ?? "Chat with us"),
        this.status,
        this.link,
      ),
      this.queue,
      this.log,
      this.activity,
      this.error,
      form,
    );
    host.append(this.root);
    this.render();
  }

  async start(): Promise<string> {
    try {
      this.sessionId = await this.resolveSession();
    } catch (error) {
      this.showError(`Could not start the chat: ${describeError(error)}`);
      this.setLink("failed");
      throw error;
    }
    this.root.dataset["session"] = this.sessionId;
    this.options.onSession?.(this.sessionId);
    this.input.disabled = false;
    this.send.disabled = false;
    void keepStreaming({
      signal: this.stopper.signal,
      open: (signal) =>
        this.events.listEvents(
          { sessionId: this.sessionId, minOffset: BigInt(this.state.nextOffset), follow: true },
          { signal },
        ),
      onMessage: (response) => this.update(applyResponse(this.state, response)),
      fatal: this.fatal,
      onState: (state, detail) => {
        this.setLink(state);
        if (state === "failed") this.showError(`The chat stopped: ${detail}. Reload to try again.`);
      },
    });
    return this.sessionId;
  }

  stop(): void {
    this.stopper.abort();
    this.root.remove();
  }

  private storageKey(customerId: string): string {
    return `baton.widget.session.${customerId}.${this.options.agentId ?? ""}`;
  }

  private async resolveSession(): Promise<string> {
    if (this.options.sessionId) return this.options.sessionId;
    const customerId =
      this.options.customerId ?? tokenSubject(await this.credentials.get());
    const remember = this.options.remember !== false;
    const key = this.storageKey(customerId);
    const remembered = remember ? safeStorage()?.getItem(key) : null;
    if (remembered) {
      try {
        await withRetry(() => this.sessions.getSession({ sessionId: remembered }));
        return remembered;
      } catch {
        safeStorage()?.removeItem(key); // deleted or not this customer's: start a new one
      }
    }
    if (!this.options.agentId) throw new Error("no session to resume and no agentId to start one");
    const created = await this.sessions.createSession({
      session: { agentId: this.options.agentId, customerId },
    });
    const id = created.session?.id ?? "";
    if (remember) safeStorage()?.setItem(key, id);
    return id;
  }

  private async onSubmit(event: Event): Promise<void> {
    event.preventDefault();
    const text = this.input.value.trim();
    if (!text || !this.sessionId) return;
    this.input.value = "";
    this.hideError();
    // One key per message: a retried send never appends twice.
    const idempotencyKey = crypto.randomUUID();
    try {
      const response = await withRetry(
        () =>
          this.events.createEvent({
            sessionId: this.sessionId,
            kind: EventKind.MESSAGE,
            source: EventSource.CUSTOMER,
            data: { case: "message", value: { text } },
            idempotencyKey,
          }),
        4,
        this.fatal,
      );
      // Shown at once; the same offset arriving on the stream is ignored.
      if (response.event) this.update(applyEvent(this.state, response.event));
    } catch (error) {
      if (!this.input.value) this.input.value = text;
      this.showError(`Not sent: ${describeError(error)}. Press Enter to try again.`);
    }
    this.input.focus();
  }

  private update(next: ConversationState): void {
    if (next === this.state) return;
    this.state = next;
    this.render();
  }

  private render(): void {
    const state = this.state;
    this.status.textContent = headline(state);
    this.status.dataset["phase"] = state.phase;
    if (state.queue && state.phase === "queued") {
      this.queue.hidden = false;
      this.queue.textContent = state.queue.text;
      this.queue.dataset["position"] = String(state.queue.position);
    } else {
      this.queue.hidden = true;
    }
    for (const item of state.items) {
      if (item.role === "note" || this.rendered.has(item.offset)) continue;
      const element = renderItem(item);
      this.rendered.set(item.offset, element);
      // Before the first shown entry with a larger offset (almost always: at the end).
      let before: Element = this.draft;
      for (const [offset, other] of this.rendered) {
        if (offset > item.offset && other.isConnected && isBefore(other, before)) before = other;
      }
      this.log.insertBefore(element, before);
    }
    const draft = state.drafts.find((d) => d.correlationId === state.turn) ?? state.drafts[0];
    if (draft) {
      this.draft.hidden = false;
      clear(this.draft);
      this.draft.append(
        h("span", { class: "bw-author" }, "Virtual assistant"),
        h("p", { class: "bw-text" }, draft.text),
      );
    } else {
      this.draft.hidden = true;
    }
    this.activity.textContent = activityText(state);
    this.activity.dataset["activity"] = state.activity;
    this.pin();
  }

  private setLink(state: LinkState): void {
    this.root.dataset["link"] = state;
    this.link.dataset["state"] = state;
    this.link.textContent = {
      connecting: "Connecting…",
      live: "Online",
      reconnecting: "Reconnecting…",
      offline: "Offline: waiting for the network",
      failed: "Disconnected",
    }[state];
  }

  private showError(text: string): void {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  private hideError(): void {
    this.error.hidden = true;
  }
}

function renderItem(item: ChatItem): HTMLElement {
  const time = formatTime(item.time);
  return h(
    "li",
    {
      class: `bw-item bw-${item.role}`,
      "data-offset": item.offset,
      "data-role": item.role,
    },
    item.author ? h("span", { class: "bw-author" }, item.author) : null,
    h("p", { class: "bw-text" }, item.text),
    time ? h("time", { class: "bw-time", datetime: item.time?.toISOString() }, time) : null,
  );
}

function isBefore(a: Element, b: Element): boolean {
  return (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING) !== 0;
}

function safeStorage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null; // storage blocked (privacy settings, sandboxed frames)
  }
}

let stylesInjected = false;
function injectStyles(): void {
  if (stylesInjected || document.querySelector("style[data-baton-widget]")) return;
  stylesInjected = true;
  document.head.append(h("style", { "data-baton-widget": "" }, css));
}
