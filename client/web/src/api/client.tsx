// RPC clients for the whole app (AudioService, AnalyticsService, SearchService, Health), provided through React context so tests can
// inject a router transport.
import { createContext, useContext, type ReactNode } from "react";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AudioService } from "../gen/traum/v1/audio_pb";
import { AnalyticsService } from "../gen/traum/v1/analytics_pb";
import { SearchService } from "../gen/traum/v1/search_pb";
import { Health } from "../gen/grpc/health/v1/health_pb";

export interface Api {
  audio: Client<typeof AudioService>;
  analytics: Client<typeof AnalyticsService>;
  search: Client<typeof SearchService>;
  health: Client<typeof Health>;
}

export function createApi(transport: Transport): Api {
  return {
    audio: createClient(AudioService, transport),
    analytics: createClient(AnalyticsService, transport),
    search: createClient(SearchService, transport),
    health: createClient(Health, transport),
  };
}

/** `interceptors`: e.g. the session's, which adds the credential to every call. */
export function browserTransport(interceptors: Interceptor[] = []): Transport {
  return createGrpcWebTransport({ baseUrl: window.location.origin, useBinaryFormat: true, interceptors });
}

const ApiContext = createContext<Api | null>(null);

export function ApiProvider({ api, children }: { api: Api; children: ReactNode }) {
  return <ApiContext.Provider value={api}>{children}</ApiContext.Provider>;
}

export function useApi(): Api {
  const api = useContext(ApiContext);
  if (!api) throw new Error("useApi outside ApiProvider");
  return api;
}

export function audioUrl(fileId: string): string {
  return `/api/files/${encodeURIComponent(fileId)}/audio`;
}
