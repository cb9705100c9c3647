import test from 'ava';
import { NotFoundError } from '../../runtime/errors.js';
import { silentLogger } from '../../runtime/util/log.js';
import { activeStreamingServer } from '../streaming/server.js';
import { streamingHandlers } from './streaming.js';
import type { RpcContext } from './types.js';

const containers: Record<string, { id: string; state: string }> = {
  abc123: { id: 'abc123', state: 'RUNNING' },
  dead99: { id: 'dead99', state: 'EXITED' },
};

const ctx = {
  rt: {
    config: { streaming: { address: '127.0.0.1', port: 0, tls_cert: '', tls_key: '' } },
    logger: silentLogger(),
    streaming: {
      exec: { exec: async () => 0 },
      attach: { attach: async () => {} },
      portForward: { connect: async () => { throw new Error('unused'); } },
    },
    containers: {
      get(id: string) {
        const c = Object.values(containers).find((x) => x.id.startsWith(id));
        if (!c) throw new NotFoundError(`container ${id} not found`);
        return c;
      },
    },
    sandboxes: {
      get(id: string) {
        if (!'pod777'.startsWith(id)) throw new NotFoundError(`pod sandbox ${id} not found`);
        return { id: 'pod777', namespaces: {} };
      },
    },
  },
  signal: new AbortController().signal,
} as unknown as RpcContext;

const { Exec, Attach, PortForward } = streamingHandlers.unary as Record<string, (req: any, ctx: RpcContext) => Promise<any>>;

test.after.always(async () => {
  await activeStreamingServer().close();
});

test('Exec returns a URL with a fresh token for a running container (prefix resolved)', async (t) => {
  const a = await Exec!({ container_id: 'abc', cmd: ['ls'], stdout: true, stderr: true, stdin: false, tty: false }, ctx);
  const b = await Exec!({ container_id: 'abc', cmd: ['ls'], stdout: true, stderr: true, stdin: false, tty: false }, ctx);
  t.regex(a.url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{22}$/);
  t.not(a.url, b.url);
});

test('Exec and Attach validation', async (t) => {
  const base = { container_id: 'abc123', cmd: ['sh'], stdout: true, stderr: false, stdin: false, tty: false };
  await t.throwsAsync(Exec!({ ...base, cmd: [] }, ctx), { message: /cmd must not be empty/, name: 'InvalidArgumentError' });
  await t.throwsAsync(Exec!({ ...base, stdout: false }, ctx), { message: /one of stdin, stdout and stderr/, name: 'InvalidArgumentError' });
  await t.throwsAsync(Exec!({ ...base, tty: true, stderr: true }, ctx), { message: /tty and stderr/, name: 'InvalidArgumentError' });
  await t.throwsAsync(Exec!({ ...base, container_id: 'nope' }, ctx), { name: 'NotFoundError' });
  await t.throwsAsync(Exec!({ ...base, container_id: 'dead99' }, ctx), { message: /EXITED, not running/, name: 'FailedPreconditionError' });
  await t.throwsAsync(Attach!({ container_id: 'abc123', stdin: false, stdout: false, stderr: false, tty: false }, ctx), { name: 'InvalidArgumentError' });
  t.regex((await Attach!({ container_id: 'abc123', stdin: true, stdout: true, stderr: false, tty: true }, ctx)).url, /\/attach\//);
});

test('PortForward checks the sandbox and the ports', async (t) => {
  t.regex((await PortForward!({ pod_sandbox_id: 'pod', port: [80] }, ctx)).url, /\/portforward\//);
  await t.throwsAsync(PortForward!({ pod_sandbox_id: 'other', port: [80] }, ctx), { name: 'NotFoundError' });
  await t.throwsAsync(PortForward!({ pod_sandbox_id: 'pod777', port: [0] }, ctx), { name: 'InvalidArgumentError' });
});
