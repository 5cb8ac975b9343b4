// Typed errors: google.rpc details decoded from a ConnectError, as they come off the wire
// (incoming details: type name + binary value) and as constructed (outgoing details).
import assert from "node:assert/strict";
import { test } from "node:test";

import { create, toBinary } from "@bufbuild/protobuf";

import {
  BadRequestSchema,
  Code,
  ConnectError,
  ErrorInfoSchema,
  RetryInfoSchema,
  codeName,
  describeError,
  errorInfo,
  errorReason,
  fieldViolations,
  retryDelayMs,
} from "../dist/index.js";

function wireError(): ConnectError {
  const err = new ConnectError("text must not be blank", Code.InvalidArgument);
  err.details.push(
    {
      type: "google.rpc.ErrorInfo",
      value: toBinary(
        ErrorInfoSchema,
        create(ErrorInfoSchema, {
          reason: "INVALID_ARGUMENT",
          domain: "baton.v1",
          metadata: { field: "data.message.text" },
        }),
      ),
    },
    {
      type: "google.rpc.BadRequest",
      value: toBinary(
        BadRequestSchema,
        create(BadRequestSchema, {
          fieldViolations: [
            { field: "data.message.text", description: "must not be blank" },
            { field: "kind", description: "is required", reason: "REQUIRED" },
          ],
        }),
      ),
    },
    {
      type: "google.rpc.RetryInfo",
      value: toBinary(
        RetryInfoSchema,
        create(RetryInfoSchema, { retryDelay: { seconds: 2n, nanos: 500_000_000 } }),
      ),
    },
  );
  return err;
}

test("details decoded from the wire form", () => {
  const err = wireError();
  assert.equal(errorInfo(err)?.domain, "baton.v1");
  assert.equal(errorReason(err), "INVALID_ARGUMENT");
  assert.deepEqual(fieldViolations(err), [
    { field: "data.message.text", description: "must not be blank", reason: "" },
    { field: "kind", description: "is required", reason: "REQUIRED" },
  ]);
  assert.equal(retryDelayMs(err), 2500);
});

test("describeError gathers code, name, message, reason, metadata", () => {
  const d = describeError(wireError());
  assert.equal(d.code, Code.InvalidArgument);
  assert.equal(d.codeName, "INVALID_ARGUMENT");
  assert.equal(d.message, "text must not be blank");
  assert.equal(d.reason, "INVALID_ARGUMENT");
  assert.deepEqual(d.metadata, { field: "data.message.text" });
  assert.equal(d.fieldViolations.length, 2);
  assert.equal(d.retryDelayMs, 2500);
});

test("errors without details: undefined / empty, never a throw", () => {
  const plain = new ConnectError("no such session", Code.NotFound);
  assert.equal(errorInfo(plain), undefined);
  assert.equal(errorReason(plain), undefined);
  assert.deepEqual(fieldViolations(plain), []);
  assert.equal(retryDelayMs(plain), undefined);
  const d = describeError(new Error("boom"));
  assert.equal(d.code, Code.Unknown);
  assert.equal(d.reason, undefined);
});

test("outgoing (constructed) details are found too", () => {
  const err = new ConnectError("slow down", Code.ResourceExhausted, undefined, [
    { desc: ErrorInfoSchema, value: { reason: "TOO_MANY_FAILED_AUTHENTICATIONS", domain: "baton.v1" } },
    { desc: RetryInfoSchema, value: { retryDelay: { nanos: 250_000_000 } } },
  ]);
  assert.equal(errorReason(err), "TOO_MANY_FAILED_AUTHENTICATIONS");
  assert.equal(retryDelayMs(err), 250);
});

test("gRPC code names", () => {
  assert.equal(codeName(Code.Unauthenticated), "UNAUTHENTICATED");
  assert.equal(codeName(Code.FailedPrecondition), "FAILED_PRECONDITION");
  assert.equal(codeName(Code.DeadlineExceeded), "DEADLINE_EXCEEDED");
});
