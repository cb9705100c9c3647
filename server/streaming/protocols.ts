/**
 * Subprotocol names and negotiation. The client lists the versions it speaks in preference
 * order (one X-Stream-Protocol-Version header each for SPDY, Sec-WebSocket-Protocol for
 * WebSocket); the first one the server also speaks wins.
 */

export const STREAM_PROTOCOL_HEADER = 'x-stream-protocol-version';
export const ACCEPTED_PROTOCOLS_HEADER = 'X-Accepted-Stream-Protocol-Versions';

/** exec/attach over SPDY, newest first. */
export const REMOTECOMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
export const PORTFORWARD_PROTOCOLS = ['portforward.k8s.io'];

/** exec/attach over WebSocket; the base64 variants carry text frames for browser clients. */
export const WS_REMOTECOMMAND_PROTOCOLS = [
  'v5.channel.k8s.io', 'v4.channel.k8s.io', 'v4.base64.channel.k8s.io', 'channel.k8s.io', 'base64.channel.k8s.io',
];
/** port-forward over WebSocket: SPDY tunnelled in binary messages (client-go's tunneling dialer), or the older channel framing. */
export const WS_TUNNEL_PREFIX = 'SPDY/3.1+';
export const WS_PORTFORWARD_PROTOCOLS = ['SPDY/3.1+portforward.k8s.io', 'v4.channel.k8s.io', 'portforward.k8s.io'];

/** Protocol version number of a remotecommand subprotocol (1 for channel.k8s.io). */
export function remoteCommandVersion(protocol: string): number {
  const m = /^v(\d+)\./.exec(protocol);
  return m ? Number(m[1]) : 1;
}

/** Splits repeated and comma-joined header values into a list. */
export function headerList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const all = Array.isArray(value) ? value : [value];
  return all.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

/**
 * The first client protocol the server supports; '' when the client sent none (clients from
 * before negotiation, which speak the first version); undefined when nothing matches (403).
 */
export function negotiate(client: string[], server: string[]): string | undefined {
  if (client.length === 0) return '';
  return client.find((p) => server.includes(p));
}
