/**
 * The gRPC server: loads the vendored CRI proto and registers every RPC of
 * runtime.v1.RuntimeService and runtime.v1.ImageService. Handlers come from the
 * tables in server/rpc/; an RPC in no table answers UNIMPLEMENTED naming itself.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import type { Runtime } from '../runtime/index.js';
import { InFlight, MalformedRequest, serverStream, unary, unimplemented } from './adapter.js';
import { handlers } from './rpc/table.js';

export const PROTO_PATH = fileURLToPath(new URL('../../proto/api.proto', import.meta.url));

/** 16 MiB both ways: ListContainers/ListImages on a busy node exceed grpc's 4 MiB default. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export function loadCri(): { RuntimeService: grpc.ServiceDefinition; ImageService: grpc.ServiceDefinition } {
  const def = protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor; ImageService: grpc.ServiceClientConstructor } };
  };
  return { RuntimeService: tolerant(pkg.runtime.v1.RuntimeService.service), ImageService: tolerant(pkg.runtime.v1.ImageService.service) };
}

/**
 * grpc-js answers INTERNAL when a request does not decode; the caller sent the bad bytes, so the
 * decoder hands the handler a MalformedRequest instead, and the adapter says INVALID_ARGUMENT.
 */
function tolerant(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(service)) {
    const decode = m.requestDeserialize;
    out[name] = {
      ...m,
      requestDeserialize: (b: Buffer) => {
        try {
          return decode(b);
        } catch (e) {
          return new MalformedRequest(e instanceof Error ? e.message : String(e));
        }
      },
    };
  }
  return out;
}

function implement(service: grpc.ServiceDefinition, rt: Runtime, inflight: InFlight): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(service)) {
    if (method.responseStream) {
      const h = handlers.stream[name];
      impl[name] = h
        ? serverStream(name, h, rt, inflight)
        : ((call: grpc.ServerWritableStream<unknown, unknown>) => {
            call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: `${name} is not implemented by corral yet` });
          });
    } else {
      const h = handlers.unary[name];
      impl[name] = h ? unary(name, h, rt, inflight) : unimplemented(name, rt);
    }
  }
  return impl;
}

export function createGrpcServer(rt: Runtime): { server: grpc.Server; inflight: InFlight } {
  const { RuntimeService, ImageService } = loadCri();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  const inflight = new InFlight();
  server.addService(RuntimeService, implement(RuntimeService, rt, inflight));
  server.addService(ImageService, implement(ImageService, rt, inflight));
  return { server, inflight };
}
