/**
 * A small SPDY client for tests: the HTTP upgrade as client-go does it, then a client session
 * that honours flow control strictly (unlike spdystream), so both behaviours get exercised.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { SpdySession, type FlowControlMode } from './session.js';

export interface UpgradeResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  session?: SpdySession;
  protocol?: string;
}

export function spdyUpgrade(url: string, protocols: string[], opts: { method?: string; flowControl?: FlowControlMode; receiveWindow?: number } = {}): Promise<UpgradeResult> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { Connection: 'Upgrade', Upgrade: 'SPDY/3.1' };
    if (protocols.length > 0) headers['X-Stream-Protocol-Version'] = protocols;
    const req = url.startsWith('https:')
      ? https.request(url, { method: opts.method ?? 'POST', headers, rejectUnauthorized: false })
      : http.request(url, { method: opts.method ?? 'POST', headers });
    req.on('upgrade', (res: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (head.length > 0) socket.unshift(head);
      const session = new SpdySession(socket, { isServer: false, flowControl: opts.flowControl ?? 'strict', receiveWindow: opts.receiveWindow });
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '', session, protocol: res.headers['x-stream-protocol-version'] as string | undefined });
    });
    req.on('response', (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Reads a stream to its end. */
export function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}
