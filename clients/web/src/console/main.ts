// The operator console (/console/): sign in with an operator API key (kept in sessionStorage,
// so it ends with the tab), the live inbox (WatchHandoffs: snapshot until caught_up, then
// changes, resumed by position), a conversation pane and the stats page.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { HandoffState, type Handoff } from "../gen/baton/v1/message_pb.js";
import { EventService, HandoffService } from "../gen/baton/v1/service_pb.js";
import { clear, h } from "../shared/dom.js";
import {
  applyInboxResponse,
  initialInbox,
  inboxLists,
  markRead,
  queuePlaces,
  type InboxState,
} from "../shared/inbox.js";
import { keepStreaming, type LinkState } from "../shared/stream.js";
import {
  Credentials,
  describeError,
  isUnauthenticated,
  makeTransport,
  type Protocol,
} from "../shared/transport.js";
import { SessionPane, type Operator } from "./session.js";
import { StatsPage } from "./stats.js";

interface Login {
  readonly apiKey: string;
  readonly operator: Operator;
  readonly protocol: Protocol;
}

const STORAGE_KEY = "baton.console.login";
const app = document.getElementById("app");
if (!app) throw new Error("no #app element");
const baseUrl = new URLSearchParams(window.location.hash.slice(1)).get("baseUrl") || window.location.origin;

function savedLogin(): Login | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as Login) : undefined;
  } catch {
    return undefined;
  }
}

function showLogin(message = ""): void {
  clear(app!);
  const key = h("input", { id: "login-key", type: "password", required: true, autocomplete: "off" });
  const id = h("input", { id: "login-id", type: "text", required: true, autocomplete: "username" });
  const name = h("input", { id: "login-name", type: "text", autocomplete: "name" });
  const protocol = h(
    "select",
    { id: "login-protocol" },
    h("option", { value: "connect" }, "Connect"),
    h("option", { value: "grpc-web" }, "gRPC-Web"),
  );
  const error = h("p", { class: "bc-error", role: "alert", hidden: !message }, message);
  const submit = h("button", { type: "submit", class: "bc-primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "bc-login",
      onsubmit: async (event: Event) => {
        event.preventDefault();
        const login: Login = {
          apiKey: key.value.trim(),
          operator: { id: id.value.trim(), displayName: name.value.trim() || id.value.trim() },
          protocol: protocol.value === "grpc-web" ? "grpc-web" : "connect",
        };
        submit.disabled = true;
        try {
          // Checks the key (and that it may act as an operator) before showing the inbox.
          const transport = makeTransport(baseUrl, Credentials.fixed(login.apiKey), login.protocol);
          await createClient(HandoffService, transport).getHandoffStats({});
          sessionStorage.setItem(STORAGE_KEY, JSON.stringify(login));
          start(login);
        } catch (failure) {
          error.textContent = `Sign-in failed: ${describeError(failure)}`;
          error.hidden = false;
          submit.disabled = false;
          key.focus();
        }
      },
    },
    h("h1", {}, "Baton operator console"),
    h("label", { for: "login-key" }, "Operator API key"),
    key,
    h("label", { for: "login-id" }, "Operator id"),
    id,
    h("label", { for: "login-name" }, "Display name (shown to customers)"),
    name,
    h("label", { for: "login-protocol" }, "Protocol"),
    protocol,
    error,
    submit,
  );
  app!.append(h("main", { class: "bc-login-page" }, form));
  key.focus();
}

function start(login: Login): void {
  clear(app!);
  const transport = makeTransport(baseUrl, Credentials.fixed(login.apiKey), login.protocol);
  const handoffs = createClient(HandoffService, transport);
  const events = createClient(EventService, transport);
  const stopper = new AbortController();
  let inbox: InboxState = initialInbox;

  const layout = h("div", { class: "bc-layout", "data-pane": "list" });
  const pane = new SessionPane({
    events,
    handoffs,
    operator: login.operator,
    onBack: () => {
      layout.dataset["pane"] = "list";
      (layout.querySelector(`[data-handoff-id="${pane.currentId}"]`) as HTMLElement | null)?.focus();
    },
  });
  const stats = new StatsPage(handoffs);
  const link = h("span", { class: "bc-link", "data-state": "connecting" }, "connecting");
  const pendingList = h("ul", { class: "bc-list", "data-list": "pending" });
  const claimedList = h("ul", { class: "bc-list", "data-list": "claimed" });
  const pendingCount = h("span", { class: "bc-count" });
  const claimedCount = h("span", { class: "bc-count" });
  const inboxSection = h(
    "section",
    { class: "bc-inbox", "aria-labelledby": "bc-inbox-title" },
    h("h2", { id: "bc-inbox-title" }, "Inbox ", link),
    h("h3", {}, "Waiting ", pendingCount),
    pendingList,
    h("h3", {}, "Claimed ", claimedCount),
    claimedList,
  );
  layout.append(inboxSection, pane.element);

  const inboxTab = h("button", { type: "button", "aria-current": "page", onclick: () => showView("inbox") }, "Inbox");
  const statsTab = h("button", { type: "button", onclick: () => showView("stats") }, "Stats");
  const main = h("main", { class: "bc-main" }, layout);
  app!.append(
    h(
      "header",
      { class: "bc-top" },
      h("h1", {}, "Baton console"),
      h("nav", { "aria-label": "Views" }, inboxTab, statsTab),
      h("span", { class: "bc-who" }, `${login.operator.displayName} (${login.operator.id})`),
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            stopper.abort();
            pane.close();
            sessionStorage.removeItem(STORAGE_KEY);
            showLogin();
          },
        },
        "Sign out",
      ),
    ),
    main,
  );

  function showView(view: "inbox" | "stats"): void {
    clear(main);
    inboxTab.toggleAttribute("aria-current", view === "inbox");
    statsTab.toggleAttribute("aria-current", view === "stats");
    if (view === "inbox") inboxTab.setAttribute("aria-current", "page");
    else statsTab.setAttribute("aria-current", "page");
    main.append(view === "inbox" ? layout : stats.element);
    if (view === "stats") {
      void stats.load();
      (stats.element.querySelector("h2") as HTMLElement).focus();
    }
  }

  function select(handoff: Handoff): void {
    inbox = markRead(inbox, handoff.id);
    pane.show(handoff);
    layout.dataset["pane"] = "session";
    renderInbox();
  }

  function renderInbox(): void {
    const { pending, claimed } = inboxLists(inbox);
    pendingCount.textContent = `(${pending.length})`;
    claimedCount.textContent = `(${claimed.length})`;
    places = queuePlaces(pending);
    fill(pendingList, pending, "Nobody is waiting.");
    fill(claimedList, claimed, "No claimed conversations.");
  }

  let places = new Map<string, number>();
  function fill(list: HTMLElement, handoffs: Handoff[], empty: string): void {
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.["handoffId"];
    clear(list);
    if (handoffs.length === 0) list.append(h("li", { class: "bc-empty" }, empty));
    for (const handoff of handoffs) {
      const requested = handoff.requestedAt ? timestampDate(handoff.requestedAt) : undefined;
      const holder = handoff.operator?.displayName || handoff.operator?.id || "";
      const button = h(
        "button",
        {
          type: "button",
          class: "bc-handoff",
          "data-handoff-id": handoff.id,
          "data-session-id": handoff.sessionId,
          "aria-current": handoff.id === pane.currentId ? "true" : undefined,
          onclick: () => select(handoff),
        },
        h("strong", {}, handoff.reason || "Handoff"),
        h(
          "span",
          { class: "bc-sub" },
          handoff.state === HandoffState.PENDING
            ? `number ${places.get(handoff.id) ?? "?"} in the queue`
            : `held by ${holder}`,
          requested ? ` · ${ago(requested)}` : "",
          inbox.unread.has(handoff.id) ? h("span", { class: "bc-unread" }, " · new") : null,
        ),
      );
      list.append(h("li", {}, button));
      if (focused === handoff.id) button.focus();
    }
  }

  void keepStreaming({
    signal: stopper.signal,
    open: (signal) =>
      handoffs.watchHandoffs(
        { operator: login.operator, afterPosition: inbox.position },
        { signal },
      ),
    onMessage: (response) => {
      inbox = applyInboxResponse(inbox, response);
      for (const change of response.changes) if (change.handoff) pane.refresh(change.handoff);
      renderInbox();
      app!.dataset["inbox"] = inbox.caughtUp ? "live" : "loading";
    },
    // A key that stops working (revoked, expired) sends the operator back to sign in.
    fatal: isUnauthenticated,
    onState: (state: LinkState, detail) => {
      link.dataset["state"] = state;
      link.textContent = state === "live" ? "● live" : state;
      if (state === "failed") {
        stopper.abort();
        pane.close();
        sessionStorage.removeItem(STORAGE_KEY);
        showLogin(`The inbox stopped: ${detail}`);
      }
    },
  });
  renderInbox();
  showView("inbox");
}

function ago(time: Date): string {
  const minutes = Math.round((Date.now() - time.getTime()) / 60_000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  return `${Math.round(minutes / 60)} h ago`;
}

const login = savedLogin();
if (login) start(login);
else showLogin();
