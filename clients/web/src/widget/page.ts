// The standalone widget page (/widget/): its settings come from the URL fragment, which the
// browser never sends to a server:
//   /widget/#token=<customer token>&agent=<agent id>[&session=<id>][&baseUrl=...][&protocol=grpc-web]
// Once a session is started its id is written back into the fragment, so a reload resumes it.
const params = new URLSearchParams(window.location.hash.slice(1));
const host = document.getElementById("chat");
const token = params.get("token");
if (!host) throw new Error("no #chat element");
if (!token) {
  host.textContent =
    "Open this page with #token=<customer token>&agent=<agent id> (see clients/web/README.md).";
} else {
  const handle = window.BatonWidget.mount(host, {
    baseUrl: params.get("baseUrl") || window.location.origin,
    token,
    agentId: params.get("agent") ?? undefined,
    sessionId: params.get("session") ?? undefined,
    customerId: params.get("customer") ?? undefined,
    protocol: params.get("protocol") === "grpc-web" ? "grpc-web" : "connect",
    remember: false,
  });
  handle.session.then(
    (id) => {
      params.set("session", id);
      history.replaceState(null, "", `#${params.toString()}`);
    },
    () => undefined, // the widget shows the error
  );
}
export {};
