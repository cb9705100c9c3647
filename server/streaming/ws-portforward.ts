/**
 * port-forward over plain WebSocket channels (portforward.k8s.io / v4.channel.k8s.io, the
 * kubelet's older WebSocket form; client-go now tunnels SPDY instead, see portforward.ts). The
 * ports come from the URL's `port` query parameters; port i uses channel 2i for data and 2i+1
 * for errors, and the first message we send on each channel is the port as 16-bit little endian.
 */
import type { WebSocket } from 'ws';
import type { Logger, PortForwardBackend } from '../../runtime/index.js';
import { WsChannelWriter } from './ws-remotecommand.js';

export function serveWsPortForward(
  ws: WebSocket,
  podSandboxId: string,
  ports: number[],
  backend: PortForwardBackend,
  logger: Logger,
): void {
  const gone = new AbortController();
  const conns: Array<import('node:stream').Duplex | undefined> = [];
  ws.on('close', () => {
    gone.abort();
    for (const c of conns) c?.destroy();
  });
  ws.on('error', (err) => logger.debug(`streaming: websocket port-forward: ${err.message}`));
  const pending: Buffer[][] = ports.map(() => []);
  ws.on('message', (raw: Buffer, isBinary: boolean) => {
    if (!isBinary || raw.length === 0) return;
    const ch = raw[0]!;
    const i = ch >> 1;
    if (ch % 2 !== 0 || i >= ports.length) return;
    const data = raw.subarray(1);
    const c = conns[i];
    if (c) c.write(data);
    else pending[i]!.push(Buffer.from(data));
  });
  ports.forEach((port, i) => {
    const dataCh = new WsChannelWriter(ws, 2 * i, false);
    const errCh = new WsChannelWriter(ws, 2 * i + 1, false);
    const portLE = Buffer.alloc(2);
    portLE.writeUInt16LE(port, 0);
    dataCh.send(portLE, () => {});
    errCh.send(portLE, () => {});
    backend.connect(podSandboxId, port, gone.signal).then((conn) => {
      conns[i] = conn;
      for (const b of pending[i]!) conn.write(b);
      pending[i] = [];
      conn.on('error', (err) => errCh.send(Buffer.from(err.message), () => {}));
      conn.pipe(dataCh);
      conn.on('close', () => {
        if (conns.every((x) => !x || x.destroyed)) ws.close(1000);
      });
    }, (err: Error) => {
      errCh.send(Buffer.from(`error forwarding port ${port} to pod ${podSandboxId}: ${err.message}`), () => {});
    });
  });
}
