/** The optional Prometheus endpoint (config.metrics.address, off by default): GET /metrics. */
import { createServer, type Server } from 'node:http';
import type { Runtime } from '../runtime/index.js';

export async function startMetricsServer(rt: Runtime, address: string): Promise<Server> {
  const m = /^(.*):(\d+)$/.exec(address);
  if (!m) throw new Error(`metrics.address must be host:port, got ${JSON.stringify(address)}`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
      res.writeHead(404).end('not found\n');
      return;
    }
    rt.metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'Content-Type': rt.metrics.registry.contentType }).end(body),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), host, () => resolve());
  });
  return server;
}
