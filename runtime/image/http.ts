/**
 * Minimal HTTP(S) client for registries on node:http/node:https: per-registry agents (extra CA
 * files, insecure TLS), redirects without leaking Authorization to other hosts, and AbortSignal.
 * Node's global fetch cannot take a per-request CA without undici's Dispatcher, which is not a
 * dependency here.
 */
import http from 'node:http';
import https from 'node:https';
import { CancelledError, RuntimeError } from '../errors.js';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  url: URL;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
  /** Agent for https URLs; http URLs use the plain keep-alive agent. */
  httpsAgent?: https.Agent;
  maxRedirects?: number;
  /** Fail when no response headers arrive within this many ms (a TLS probe of a plain-HTTP port may hang). */
  headerTimeoutMs?: number;
}

const plainAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
export const defaultHttpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16 });

function abortReason(signal: AbortSignal): Error {
  const r = signal.reason;
  if (r instanceof RuntimeError) return r;
  return new CancelledError('request cancelled');
}

function once(url: URL, o: RequestOptions): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) return reject(abortReason(o.signal));
    const isHttps = url.protocol === 'https:';
    const mod = isHttps ? https : http;
    const req = mod.request(url, {
      method: o.method ?? 'GET',
      headers: { 'User-Agent': 'corral/0.1', ...(o.headers ?? {}) },
      agent: isHttps ? (o.httpsAgent ?? defaultHttpsAgent) : plainAgent,
    });
    let response: http.IncomingMessage | undefined;
    // Once the headers are in, the body is what is being read: a cancelled pull must close it
    // (and its connection) too, or a stalled download stays open until the registry hangs up.
    const onAbort = () => {
      const reason = abortReason(o.signal!);
      response?.destroy(reason);
      req.destroy(reason);
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const headerTimer = o.headerTimeoutMs
      ? setTimeout(() => req.destroy(new Error(`no response from ${url.host} within ${o.headerTimeoutMs} ms`)), o.headerTimeoutMs)
      : undefined;
    req.on('response', (res) => {
      response = res;
      if (headerTimer) clearTimeout(headerTimer);
      res.once('close', () => o.signal?.removeEventListener('abort', onAbort));
      // Errors after the response arrived surface on the body stream.
      res.on('error', () => undefined);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
    });
    req.on('error', (err) => {
      if (headerTimer) clearTimeout(headerTimer);
      o.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    req.end(o.body);
  });
}

/** One request, following up to maxRedirects (default 5) redirects. */
export async function request(url: URL, o: RequestOptions = {}): Promise<HttpResponse> {
  let cur = url;
  let headers = { ...(o.headers ?? {}) };
  for (let hop = 0; ; hop++) {
    const res = await once(cur, { ...o, headers });
    if (res.status >= 300 && res.status < 400 && res.headers.location && hop < (o.maxRedirects ?? 5)) {
      res.body.resume();
      const next = new URL(res.headers.location, cur);
      if (next.host !== cur.host) {
        // Blob redirects go to storage backends with signed URLs: the registry's token is not theirs.
        const { Authorization: _a, authorization: _b, ...rest } = headers;
        headers = rest;
      }
      cur = next;
      continue;
    }
    return res;
  }
}

/** Reads a whole (small) body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit = 8 << 20): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    n += (c as Buffer).length;
    if (n > limit) {
      res.body.destroy();
      throw new Error(`response from ${res.url.host} exceeds ${limit} bytes`);
    }
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}
