// Typed errors: the google.rpc details Baton attaches to its errors (ErrorInfo with an
// UPPER_SNAKE reason, BadRequest naming each bad field, RetryInfo), decoded from a
// ConnectError without touching raw details.
import { Code, ConnectError } from "@connectrpc/connect";

import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen-deps/google/rpc/error_details_pb.js";
import type { ErrorInfo } from "./gen-deps/google/rpc/error_details_pb.js";

export {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen-deps/google/rpc/error_details_pb.js";
export type {
  BadRequest,
  BadRequest_FieldViolation,
  ErrorInfo,
  RetryInfo,
} from "./gen-deps/google/rpc/error_details_pb.js";

/** One bad field of a request (from google.rpc.BadRequest). */
export interface FieldViolation {
  /** Path of the field, e.g. "message.text". */
  field: string;
  /** What is wrong with it. */
  description: string;
  /** UPPER_SNAKE reason, when the server gives one. */
  reason: string;
}

/** Everything Baton says about a failed call, decoded. */
export interface BatonErrorDetails {
  /** The gRPC status code. */
  code: Code;
  /** Its name as in gRPC, e.g. "UNAUTHENTICATED". */
  codeName: string;
  /** The server's message (without the "[code]" prefix ConnectError.message has). */
  message: string;
  /** ErrorInfo.reason, e.g. "UNAUTHENTICATED"; undefined without ErrorInfo. */
  reason: string | undefined;
  /** ErrorInfo.domain ("baton.v1"). */
  domain: string | undefined;
  /** ErrorInfo.metadata (e.g. the resume offset of SERVER_SHUTTING_DOWN). */
  metadata: Record<string, string>;
  /** BadRequest field violations (empty when none). */
  fieldViolations: FieldViolation[];
  /** RetryInfo.retry_delay in milliseconds; undefined when the server gave none. */
  retryDelayMs: number | undefined;
}

/** `err` as a ConnectError (ConnectError.from: aborts become CANCELED, anything else UNKNOWN). */
function asConnectError(err: unknown): ConnectError {
  return ConnectError.from(err);
}

/** The ErrorInfo detail of an error, if any. */
export function errorInfo(err: unknown): ErrorInfo | undefined {
  return asConnectError(err).findDetails(ErrorInfoSchema)[0];
}

/** ErrorInfo.reason (e.g. "STALE_CONTROL_EPOCH"), or undefined. */
export function errorReason(err: unknown): string | undefined {
  return errorInfo(err)?.reason || undefined;
}

/** The BadRequest field violations of an error (empty when there are none). */
export function fieldViolations(err: unknown): FieldViolation[] {
  return asConnectError(err)
    .findDetails(BadRequestSchema)
    .flatMap((b) => b.fieldViolations)
    .map((v) => ({ field: v.field, description: v.description, reason: v.reason }));
}

/** RetryInfo.retry_delay in milliseconds, or undefined when the error carries none. */
export function retryDelayMs(err: unknown): number | undefined {
  const delay = asConnectError(err).findDetails(RetryInfoSchema)[0]?.retryDelay;
  if (!delay) return undefined;
  return Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6);
}

/** gRPC name of a code: Code.Unauthenticated → "UNAUTHENTICATED". */
export function codeName(code: Code): string {
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** All of the above at once, e.g. for logging: `console.log(describeError(e))`. */
export function describeError(err: unknown): BatonErrorDetails {
  const ce = asConnectError(err);
  const info = errorInfo(ce);
  return {
    code: ce.code,
    codeName: codeName(ce.code),
    message: ce.rawMessage,
    reason: info?.reason || undefined,
    domain: info?.domain || undefined,
    metadata: { ...(info?.metadata ?? {}) },
    fieldViolations: fieldViolations(ce),
    retryDelayMs: retryDelayMs(ce),
  };
}
