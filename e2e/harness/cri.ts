/**
 * Direct CRI calls for what crictl cannot express or does not print: PullImage with
 * AuthConfig.server_address, PodSandboxStatus's containers_statuses and timestamp.
 * Messages in the proto-loader shapes (snake_case, int64 as strings).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { REPO } from './paths.js';

type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

let services: { RuntimeService: grpc.ServiceClientConstructor; ImageService: grpc.ServiceClientConstructor } | undefined;

function load() {
  if (!services) {
    const def = protoLoader.loadSync(join(REPO, 'proto', 'api.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    services = (grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: NonNullable<typeof services> } }).runtime.v1;
  }
  return services;
}

/** One unary RPC on the daemon's socket; rejects with the gRPC error (code, details). */
export async function criCall<T = any>(socket: string, service: 'RuntimeService' | 'ImageService', method: string, req: unknown, timeoutMs = 60_000): Promise<T> {
  const client = new (load()[service])(`unix://${socket}`, grpc.credentials.createInsecure());
  try {
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (typeof fn !== 'function') throw new Error(`no RPC ${service}.${method}`);
    return await new Promise<T>((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  } finally {
    client.close();
  }
}

export const GRPC_STATUS = grpc.status;
