/**
 * Single-use tokens that stand for one prepared Exec/Attach/PortForward request. The RPC stores
 * the validated request and hands out a URL with the token; the HTTP side takes it back exactly
 * once. Tokens are 128 random bits (URL-safe base64) so that the URL itself is the capability,
 * and they expire after a minute like the kubelet's, so a leaked URL is soon useless.
 */
import { randomBytes } from 'node:crypto';

export const TOKEN_TTL_MS = 60_000;
const MAX_TOKENS = 10_000;

export class TokenCache<T> {
  private readonly entries = new Map<string, { value: T; expires: number }>();

  constructor(private readonly ttlMs = TOKEN_TTL_MS, private readonly now: () => number = Date.now) {}

  /** Stores value under a fresh token. */
  put(value: T): string {
    this.sweep();
    if (this.entries.size >= MAX_TOKENS) {
      // Drop the oldest: a flood of unused requests must not grow memory without bound.
      const first = this.entries.keys().next().value;
      if (first !== undefined) this.entries.delete(first);
    }
    let token: string;
    do token = randomBytes(16).toString('base64url'); while (this.entries.has(token));
    this.entries.set(token, { value, expires: this.now() + this.ttlMs });
    return token;
  }

  /** Returns the value once; undefined for an unknown, used or expired token. */
  take(token: string): T | undefined {
    const e = this.entries.get(token);
    if (!e) return undefined;
    this.entries.delete(token);
    return e.expires > this.now() ? e.value : undefined;
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, e] of this.entries) {
      if (e.expires <= now) this.entries.delete(k);
      else break; // insertion order is expiry order
    }
  }
}
