// Public entry point of the Baton TypeScript client: the hand-written client (credentials,
// TLS, keepalive, retries, follow, watchHandoffs), tool workers (defineTool, ToolWorker), typed
// error helpers, and every generated message, enum and service descriptor of baton.v1.
export * from "./client.js";
export * from "./credentials.js";
export * from "./errors.js";
export {
  backoffDelayMs,
  idempotencyKeyInterceptor,
  isSafeToRetry,
  newIdempotencyKey,
  retryInterceptor,
} from "./retry.js";
export type { BackoffOptions, RetryOptions } from "./retry.js";
export { DrainTimeoutError, ToolWorker, defineTool, handOff, valueToJson } from "./worker.js";
export type {
  JsonSchemaObject,
  ToolCallInfo,
  ToolDefinition,
  ToolResult,
  ToolWorkerOptions,
  WorkerLogger,
  WorkerReconnectInfo,
  WorkerTarget,
  WorkerTool,
} from "./worker.js";
// The class above shadows the generated message of the same name (a worker as ListTools shows
// it, `Tool.workers`): here it is under another name.
export type { ToolWorker as ToolWorkerMessage } from "./gen/baton/v1/message_pb.js";
export type { JsonObject, JsonValue } from "@bufbuild/protobuf";
export * from "./gen/baton/v1/message_pb.js";
export * from "./gen/baton/v1/request_response_pb.js";
export * from "./gen/baton/v1/service_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
export type { CallOptions, Client, Interceptor, Transport } from "@connectrpc/connect";
export { create } from "@bufbuild/protobuf";
