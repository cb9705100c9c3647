import test from 'ava';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderHosts, renderResolvConf, writePodFiles } from './files.js';

test('renderHosts: loopback names, then each pod address with the hostname', (t) => {
  const h = renderHosts('web-0', ['10.88.0.5', 'fd00::5']);
  t.true(h.startsWith('127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'));
  t.true(h.endsWith('10.88.0.5\tweb-0\nfd00::5\tweb-0\n'));
});

test('renderResolvConf: search, nameservers, options; nothing given means the host file', (t) => {
  t.is(renderResolvConf({ servers: ['10.96.0.10', '8.8.8.8'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5', 'edns0'] }),
    'search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 8.8.8.8\noptions ndots:5 edns0\n');
  t.is(renderResolvConf({ servers: ['1.2.3.4'] }), 'nameserver 1.2.3.4\n');
  t.is(renderResolvConf(null), undefined);
  t.is(renderResolvConf({ servers: [], searches: [], options: [] }), undefined);
});

test('writePodFiles: pod network vs host network', async (t) => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'corral-files-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const f = await writePodFiles({ dir, hostname: 'p', ips: ['10.0.0.2'], hostNetwork: false, dns: null, hostResolvConf: 'nameserver 9.9.9.9\n' });
  t.is(await fs.readFile(f.hostname, 'utf8'), 'p\n');
  t.is(await fs.readFile(f.resolvConf, 'utf8'), 'nameserver 9.9.9.9\n');
  t.regex(await fs.readFile(f.hosts, 'utf8'), /10\.0\.0\.2\tp\n$/);
  t.is((await fs.stat(f.hosts)).mode & 0o777, 0o644);
  const g = await writePodFiles({ dir, hostname: 'node', ips: [], hostNetwork: true, dns: { servers: ['1.1.1.1'] }, hostHosts: 'HOSTS\n' });
  t.is(await fs.readFile(g.hosts, 'utf8'), 'HOSTS\n');
  t.is(await fs.readFile(g.resolvConf, 'utf8'), 'nameserver 1.1.1.1\n');
});
