// The Traum client for programs: typed service clients, uploads, job
// following and error details, with no UI, DOM or Node dependency. Node
// programs that want protocol "grpc" (HTTP/2, client streaming) import
// `./node` instead, which re-exports all of this.
export {
  bearerInterceptor,
  createTraumClient,
  grpcWebTransport,
  type Protocol,
  type TransportFactory,
  type TransportFactoryOptions,
  type TraumClient,
  type TraumClientOptions,
} from "./client";
export { errorDetails, type ErrorDetails, type FieldViolation, type ResourceRef } from "./errors";
export { followJob, isTerminal, type FollowJobOptions } from "./jobs";
export { uploadFile, type UploadOptions, type UploadProgress, type UploadSource } from "./upload";

// What a caller needs to name requests, answers and states without reaching
// into the generated code's paths.
export { Code, ConnectError, type CallOptions, type Interceptor, type Transport } from "@connectrpc/connect";
export * from "../gen/traum/v1/audio_pb";
export * from "../gen/traum/v1/search_pb";
export * from "../gen/traum/v1/analytics_pb";
export * from "../gen/traum/v1/admin_pb";
export * from "../gen/google/rpc/error_details_pb";
export { Health, HealthCheckResponse_ServingStatus, type HealthCheckResponse } from "../gen/grpc/health/v1/health_pb";
