// The Node entry: everything of index.ts, with protocol "grpc" working out of
// the box over Node's HTTP/2 (browsers cannot load this file: it pulls in
// node:http2 through @connectrpc/connect-node).
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createTraumClient as createUniversalClient, grpcWebTransport, type TransportFactory, type TraumClient, type TraumClientOptions } from "./client";

export * from "./index";

/** HTTP/2 gRPC for "grpc", gRPC-web over fetch for "grpc-web". */
export const nodeTransport: TransportFactory = (options) =>
  options.protocol === "grpc" ? createGrpcTransport({ baseUrl: options.baseUrl, interceptors: options.interceptors }) : grpcWebTransport(options);

export function createTraumClient(options: TraumClientOptions): TraumClient {
  return createUniversalClient({ ...options, transport: options.transport ?? nodeTransport });
}
