// Decodes the google.rpc error details traum-server attaches to failures
// (grpc-status-details-bin) into plain data a program can branch on.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ResourceInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb";

export interface FieldViolation {
  /** Request field path in proto names, e.g. `options.limit`. */
  field: string;
  description: string;
}

export interface ResourceRef {
  /** Proto message full name, e.g. `traum.v1.File`. */
  type: string;
  /** The identifier the request asked for. */
  name: string;
  description: string;
}

export interface ErrorDetails {
  code: Code;
  /** The code's name, e.g. `NotFound`. */
  codeName: string;
  /** The server's message, without the `[code]` prefix ConnectError.message has. */
  message: string;
  /** From google.rpc.BadRequest (INVALID_ARGUMENT); empty when none was sent. */
  fieldViolations: FieldViolation[];
  /** From google.rpc.RetryInfo, else the `retry-after` metadata (RESOURCE_EXHAUSTED). */
  retryDelaySeconds?: number;
  /** From google.rpc.ResourceInfo (NOT_FOUND). */
  resource?: ResourceRef;
}

/** Works on anything thrown: a non-ConnectError becomes code Unknown (an abort: Canceled). */
export function errorDetails(err: unknown): ErrorDetails {
  const e = ConnectError.from(err);
  const out: ErrorDetails = {
    code: e.code,
    codeName: Code[e.code] ?? String(e.code),
    message: e.rawMessage,
    fieldViolations: e
      .findDetails(BadRequestSchema)
      .flatMap((b) => b.fieldViolations.map((v) => ({ field: v.field, description: v.description }))),
  };
  const retry = e.findDetails(RetryInfoSchema).find((r) => r.retryDelay !== undefined);
  if (retry?.retryDelay) {
    out.retryDelaySeconds = Number(retry.retryDelay.seconds) + retry.retryDelay.nanos / 1e9;
  } else {
    const header = e.metadata.get("retry-after");
    if (header !== null && /^\d+$/.test(header.trim())) out.retryDelaySeconds = Number(header.trim());
  }
  const resource = e.findDetails(ResourceInfoSchema)[0];
  if (resource) {
    out.resource = { type: resource.resourceType, name: resource.resourceName, description: resource.description };
  }
  return out;
}
