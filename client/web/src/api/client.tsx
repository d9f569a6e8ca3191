// RPC clients for the whole app, made by the standalone client (src/client),
// provided through React context so tests can inject a router transport.
import { createContext, useContext, type ReactNode } from "react";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createTraumClient, grpcWebTransport, type TraumClient } from "../client";

export type Api = TraumClient;

export function createApi(transport: Transport): Api {
  return createTraumClient({ protocol: "grpc-web", transport });
}

/** `interceptors`: e.g. the session's, which adds the credential to every call. */
export function browserTransport(interceptors: Interceptor[] = []): Transport {
  return grpcWebTransport({ baseUrl: window.location.origin, protocol: "grpc-web", interceptors });
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
