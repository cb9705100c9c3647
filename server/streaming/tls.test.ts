import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../runtime/util/log.js';
import { StreamingServer } from './server.js';
import { readAll, spdyUpgrade } from './spdy/test-client.js';

test('TLS: with tls_cert and tls_key the URLs are https and SPDY works over TLS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const server = await StreamingServer.start({
      config: { streaming: { address: '127.0.0.1', port: 0, tls_cert: join(dir, 'cert.pem'), tls_key: join(dir, 'key.pem'), idle_timeout_seconds: 0 } },
      logger: silentLogger(),
      exec: { exec: async (_req, io) => { io.stdout?.write('over tls\n'); return 0; } },
      attach: { attach: async () => {} },
      portForward: { connect: async () => { throw new Error('no'); } },
    });
    try {
      const url = server.prepare({ kind: 'exec', containerId: 'c', cmd: ['x'], opts: { stdin: false, stdout: true, stderr: false, tty: false } });
      t.regex(url, /^https:\/\/127\.0\.0\.1:\d+\/exec\//);
      const up = await spdyUpgrade(url, ['v4.channel.k8s.io']);
      t.is(up.status, 101);
      const err = up.session!.openStream({ streamtype: ['error'] });
      const out = up.session!.openStream({ streamtype: ['stdout'] });
      t.is((await readAll(out)).toString(), 'over tls\n');
      t.deepEqual(JSON.parse((await readAll(err)).toString()), { metadata: {}, status: 'Success' });
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
