/**
 * Port-forward: a TCP connection to 127.0.0.1:<port> as seen from inside the pod, made in the
 * pod's pinned network namespace (never the host's loopback, where another service may listen
 * on the same port). Pods on the host network forward on the host's loopback.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { InvalidArgumentError } from '../errors.js';
import { NetnsDialer } from '../linux/netns-dial.js';
import type { SandboxLookup } from './ports.js';
import type { PodReads, PortForwardBackend } from './types.js';

export class NetnsPortForwardBackend implements PortForwardBackend {
  private readonly dialer = new NetnsDialer();

  constructor(private readonly sandboxes: SandboxLookup) {}

  async connect(podSandboxId: string, port: number, signal?: AbortSignal, reads?: PodReads): Promise<Duplex> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`port-forward: invalid port ${port}`);
    const sb = this.sandboxes.get(podSandboxId);
    const netns = sb.namespaces.net;
    if (!netns) {
      return await new Promise<Duplex>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port, signal, ...(reads ? { onread: reads } : {}) });
        s.once('connect', () => { s.off('error', reject); resolve(s); });
        s.once('error', reject);
      });
    }
    const fd = await this.dialer.dial(netns, port);
    if (signal?.aborted) {
      new net.Socket({ fd }).destroy();
      throw new Error('port-forward cancelled');
    }
    const sock = new net.Socket({ fd, readable: true, writable: true, ...(reads ? { onread: reads } : {}) });
    sock.setNoDelay(true);
    return sock;
  }

  async close(): Promise<void> {
    await this.dialer.close();
  }
}
