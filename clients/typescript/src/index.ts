// Public entry point of the Baton TypeScript client: the hand-written client and every
// generated message, enum and service descriptor of baton.v1.
export * from "./client.js";
export * from "./gen/baton/v1/message_pb.js";
export * from "./gen/baton/v1/request_response_pb.js";
export * from "./gen/baton/v1/service_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
export { create } from "@bufbuild/protobuf";
