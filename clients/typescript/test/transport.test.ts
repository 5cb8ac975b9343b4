// The transport a BatonClient picks from its options: plaintext only for a loopback target
// (or when asked for with insecure: true), TLS for any other host; credentials are never sent
// in plaintext to a remote host by default. (Nothing is dialled: connections open lazily.)
import assert from "node:assert/strict";
import { test } from "node:test";

import { BatonClient, isLoopback } from "../dist/index.js";

test("isLoopback: 127.0.0.0/8, ::1, localhost, nothing else", () => {
  const cases: Record<string, boolean> = {
    "127.0.0.1:8800": true,
    "127.1.2.3:1": true,
    "[::1]:8800": true,
    "::1": true,
    "[::ffff:127.0.0.1]:8800": true,
    "localhost:8800": true,
    "LOCALHOST": true,
    "app.localhost:1": true,
    "http://127.0.0.1:8800": true,
    "10.0.0.1:8800": false,
    "0.0.0.0:8800": false,
    "128.0.0.1:1": false,
    "[2001:db8::1]:8800": false,
    "[::ffff:10.0.0.1]:1": false,
    "baton.example.com:8800": false,
    "localhost.example.com:1": false,
    "127.0.0.1.nip.io:1": false,
  };
  for (const [target, want] of Object.entries(cases)) {
    assert.equal(isLoopback(target), want, target);
  }
});

test("a loopback target is plaintext by default, TLS when asked", () => {
  const clients = [
    new BatonClient({ target: "127.0.0.1:8800", credentials: "k" }),
    new BatonClient({ target: "[::1]:8800", credentials: "k" }),
    new BatonClient({ target: "localhost:8800", tls: true, credentials: "k" }),
  ];
  assert.deepEqual(
    clients.map((c) => c.baseUrl),
    ["http://127.0.0.1:8800", "http://[::1]:8800", "https://localhost:8800"],
  );
});

test("any other target gets TLS by default, plaintext only with insecure: true", () => {
  const remote = new BatonClient({ target: "baton.example.com:8800", credentials: "bk_key_x" });
  assert.equal(remote.baseUrl, "https://baton.example.com:8800");
  const noCredentials = new BatonClient("10.0.0.5:8800");
  assert.equal(noCredentials.baseUrl, "https://10.0.0.5:8800");
  const optedIn = new BatonClient({ target: "baton.example.com:8800", insecure: true, credentials: "k" });
  assert.equal(optedIn.baseUrl, "http://baton.example.com:8800");
});

test("credentials over an explicit http:// URL to a remote host need insecure: true", () => {
  assert.throws(
    () => new BatonClient({ baseUrl: "http://baton.example.com:8800", credentials: "bk_key_x" }),
    /refusing to send credentials in plaintext to baton\.example\.com:8800/,
  );
  assert.throws(
    () => new BatonClient({ target: "http://10.0.0.5:8800", credentials: async () => "t" }),
    /refusing to send credentials in plaintext/,
  );
  // Loopback, no credentials, or the explicit opt-in: allowed.
  new BatonClient({ baseUrl: "http://127.0.0.1:8800", credentials: "k" });
  new BatonClient({ baseUrl: "http://baton.example.com:8800" });
  new BatonClient({ baseUrl: "http://baton.example.com:8800", insecure: true, credentials: "k" });
  assert.throws(() => new BatonClient({ target: "127.0.0.1:1", tls: true, insecure: true }), /either tls or insecure/);
});
