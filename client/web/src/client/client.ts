// Creates the typed service clients of a Traum server. Nothing here may need
// a DOM or Node: browsers and Node import this file alike (node.ts adds the
// HTTP/2 transport, which only Node has).
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Health } from "../gen/grpc/health/v1/health_pb";
import { AdminService } from "../gen/traum/v1/admin_pb";
import { AnalyticsService } from "../gen/traum/v1/analytics_pb";
import { AudioService } from "../gen/traum/v1/audio_pb";
import { SearchService } from "../gen/traum/v1/search_pb";

/**
 * The wire protocol. `grpc` needs HTTP/2 end to end (Node, servers); it is
 * the only one that can client-stream (UploadAudio, SearchByAudio). Browsers
 * speak `grpc-web`, served by traum-server's web listener or by Envoy.
 */
export type Protocol = "grpc" | "grpc-web";

export interface TransportFactoryOptions {
  baseUrl: string;
  protocol: Protocol;
  /** Includes the bearer interceptor when an `apiKey` was given. */
  interceptors: Interceptor[];
}

export type TransportFactory = (options: TransportFactoryOptions) => Transport;

export interface TraumClientOptions {
  /** Server origin, e.g. `http://127.0.0.1:50051`; not needed with a ready-made `transport`. */
  baseUrl?: string;
  /** Sent as `authorization: Bearer <apiKey>` on every call. */
  apiKey?: string;
  protocol: Protocol;
  /**
   * A factory (called with the base URL, protocol and interceptors), or a
   * ready-made transport that is used as is (it must then bring its own
   * interceptors: see `bearerInterceptor`). Default: gRPC-web over fetch,
   * which browsers and Node both have; `grpc` has no default here (import
   * the client from `node.ts`, or pass @connectrpc/connect-node's
   * `createGrpcTransport`).
   */
  transport?: Transport | TransportFactory;
  /** More interceptors, run after the bearer one. */
  interceptors?: Interceptor[];
}

export interface TraumClient {
  readonly protocol: Protocol;
  readonly transport: Transport;
  readonly audio: Client<typeof AudioService>;
  readonly search: Client<typeof SearchService>;
  readonly analytics: Client<typeof AnalyticsService>;
  readonly admin: Client<typeof AdminService>;
  readonly health: Client<typeof Health>;
}

/** Adds `authorization: Bearer <apiKey>` to every call. */
export function bearerInterceptor(apiKey: string): Interceptor {
  const value = `Bearer ${checkApiKey(apiKey)}`;
  return (next) => (req) => {
    req.header.set("authorization", value);
    return next(req);
  };
}

/** gRPC-web over fetch, binary format (what traum-server and Envoy serve). */
export const grpcWebTransport: TransportFactory = ({ baseUrl, interceptors }) =>
  createGrpcWebTransport({ baseUrl, useBinaryFormat: true, interceptors });

const defaultTransport: TransportFactory = (options) => {
  if (options.protocol === "grpc") {
    throw new Error(
      'protocol "grpc" needs an HTTP/2 transport, which fetch does not offer: in Node import createTraumClient from ' +
        'the client\'s node entry ("traum-web/client/node"), or pass transport: createGrpcTransport from @connectrpc/connect-node',
    );
  }
  return grpcWebTransport(options);
};

export function createTraumClient(options: TraumClientOptions): TraumClient {
  const { protocol, apiKey, transport } = options;
  if (protocol !== "grpc" && protocol !== "grpc-web") {
    throw new Error(`protocol must be "grpc" or "grpc-web", not ${JSON.stringify(protocol)}`);
  }
  let ready: Transport;
  if (transport !== undefined && typeof transport !== "function") {
    // A finished transport has its interceptors baked in; adding the key
    // silently elsewhere would hide that it is not sent.
    if (apiKey !== undefined) {
      throw new Error("apiKey cannot be added to a ready-made transport: give it bearerInterceptor(apiKey), or pass a transport factory");
    }
    if (options.interceptors?.length) {
      throw new Error("interceptors cannot be added to a ready-made transport: give them to it, or pass a transport factory");
    }
    ready = transport;
  } else {
    const baseUrl = checkBaseUrl(options.baseUrl);
    const interceptors = [...(apiKey !== undefined ? [bearerInterceptor(apiKey)] : []), ...(options.interceptors ?? [])];
    ready = (transport ?? defaultTransport)({ baseUrl, protocol, interceptors });
  }
  return {
    protocol,
    transport: ready,
    audio: createClient(AudioService, ready),
    search: createClient(SearchService, ready),
    analytics: createClient(AnalyticsService, ready),
    admin: createClient(AdminService, ready),
    health: createClient(Health, ready),
  };
}

function checkBaseUrl(baseUrl: string | undefined): string {
  if (baseUrl === undefined || baseUrl === "") {
    throw new Error("baseUrl is required (e.g. http://127.0.0.1:50051) unless a ready-made transport is given");
  }
  if (!/^https?:\/\/[^/?#\s]+/.test(baseUrl)) {
    throw new Error(`baseUrl must be an http:// or https:// URL with a host, not ${JSON.stringify(baseUrl)}`);
  }
  return baseUrl;
}

function checkApiKey(apiKey: string): string {
  if (typeof apiKey !== "string" || apiKey.trim() === "") throw new Error("apiKey must be a non-empty string");
  // A header value cannot carry these; better said here than as a fetch TypeError.
  for (let i = 0; i < apiKey.length; i++) {
    const c = apiKey.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) throw new Error(`apiKey must not contain whitespace or control characters (one at index ${i})`);
  }
  return apiKey;
}
