import test from 'ava';
import type { RpcContext } from './types.js';
import { streamPodSandboxes } from './pod-sandbox-stream.js';

function ctx(items: unknown[], seen: unknown[]): RpcContext {
  return {
    rt: { sandboxes: { list: (f: unknown) => { seen.push(f); return items; } } } as never,
    signal: new AbortController().signal,
  };
}

test('StreamPodSandboxes: every pod once, in messages of at most 100, none when there are no pods', async (t) => {
  const pods = Array.from({ length: 250 }, (_, i) => ({ id: String(i) }));
  const filters: unknown[] = [];
  const sent: Array<{ pod_sandboxes: Array<{ id: string }> }> = [];
  const filter = { id: '', state: null, label_selector: { a: 'b' } };
  await streamPodSandboxes({ filter }, ctx(pods, filters), async (m) => { sent.push(m as never); });
  t.deepEqual(sent.map((m) => m.pod_sandboxes.length), [100, 100, 50]);
  t.deepEqual(sent.flatMap((m) => m.pod_sandboxes.map((p) => p.id)), pods.map((p) => p.id));
  t.deepEqual(filters, [filter]);
  const none: unknown[] = [];
  await streamPodSandboxes({ filter: null }, ctx([], []), async (m) => { none.push(m); });
  t.deepEqual(none, []);
});
