/**
 * The reliability leg: soak, chaos (SIGKILL storms, killed conmon and runtime, a killed pull),
 * registry faults, a full disk, hostile input (a fuzzer over every RPC) and the socket's and
 * streaming server's guards. Each scenario runs on a daemon of its own (a harness: private
 * dirs, its own CNI network, the e2e run's registry) whose stop fails the scenario when
 * anything is left on the host.
 *
 *   node dist/e2e/reliability/run.js [--only soak,chaos,faults,parts,fuzz,guards,disk]
 *        [--soak-cycles 600] [--soak-clients 4] [--chaos-seconds 30] [--chaos-kills 6]
 *        [--chaos-clients 10] [--fuzz-calls 1000] [--seed N] [--summary file.json]
 *
 * Prints each scenario's figures and problems, then "reliability: N passed, N failed, N skipped";
 * exits 1 when a scenario failed. The defaults are the CI sizes (about 3 minutes); e2e/README.md
 * has the full ones (--soak-cycles 1000 --chaos-seconds 120 --chaos-kills 20 --fuzz-calls 5000).
 */
import { writeFileSync } from 'node:fs';
import { startHarness, type Harness, type HarnessOptions } from '../harness/index.js';
import type { Outcome } from './lib.js';
import { chaos } from './chaos.js';
import { diskFull } from './disk.js';
import { fuzz } from './fuzz.js';
import { guards } from './guards.js';
import { parts, partsSetup } from './parts.js';
import { faultsSetup, killDuringPull, registryFaults } from './faults.js';
import { soak } from './soak.js';

interface Scenario {
  name: string;
  harness?: HarnessOptions;
  /** Before the harness: what its options need (a fault proxy's address), and its teardown. */
  setup?: () => Promise<{ options: HarnessOptions; ctx: unknown; teardown: () => Promise<void> }>;
  run: (h: Harness, ctx: any) => Promise<Outcome | Outcome[]>;
}

function args(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    m.set(a.slice(2), argv[i + 1] ?? '');
    i++;
  }
  return m;
}

async function main(): Promise<number> {
  const a = args(process.argv.slice(2));
  const num = (k: string, d: number) => (a.has(k) ? Number(a.get(k)) : d);
  const seed = num('seed', Date.now() % 1_000_000);
  const only = a.get('only')?.split(',');
  const scenarios: Scenario[] = [
    { name: 'soak', harness: { logLevel: 'info' }, run: (h) => soak(h, { cycles: num('soak-cycles', 600), clients: num('soak-clients', 4) }) },
    {
      name: 'chaos', harness: { logLevel: 'info' },
      run: (h) => chaos(h, { seconds: num('chaos-seconds', 30), kills: num('chaos-kills', 6), clients: num('chaos-clients', 10), seed }),
    },
    {
      name: 'faults',
      setup: async () => {
        const { options, proxy } = await faultsSetup();
        return { options, ctx: proxy, teardown: () => proxy.stop() };
      },
      run: async (h, proxy) => [...(await registryFaults(h, proxy)), await killDuringPull(h, proxy)],
    },
    { name: 'fuzz', harness: { logLevel: 'info' }, run: (h) => fuzz(h, { calls: num('fuzz-calls', 1000), seed }) },
    {
      name: 'parts',
      setup: async () => partsSetup(),
      run: (h, ctx) => parts(h, ctx),
    },
    { name: 'guards', harness: { logLevel: 'info' }, run: (h) => guards(h) },
    { name: 'disk', harness: { logLevel: 'info' }, run: (h) => diskFull(h) },
  ];
  const results: Outcome[] = [];
  for (const s of scenarios) {
    if (only && !only.includes(s.name)) continue;
    console.log(`\n--- reliability: ${s.name} (seed ${seed})`);
    let h: Harness | undefined;
    const t0 = Date.now();
    let outs: Outcome[] = [];
    let teardown: (() => Promise<void>) | undefined;
    try {
      const prepared = s.setup ? await s.setup() : undefined;
      teardown = prepared?.teardown;
      h = await startHarness({ ...s.harness, ...prepared?.options, allowLeftoverObjects: false });
      const r = await s.run(h, prepared?.ctx);
      outs = Array.isArray(r) ? r : [r];
    } catch (e) {
      outs = [{ name: s.name, problems: [`failed: ${(e as Error).stack ?? e}`], figures: {} }];
    }
    try {
      await h?.stop();
    } catch (e) {
      (outs[outs.length - 1] ?? outs[0]!).problems.push(`harness stop: ${(e as Error).message}`);
    }
    await teardown?.().catch(() => {});
    for (const o of outs) {
      console.log(`${o.skipped ? 'SKIP' : o.problems.length ? 'FAIL' : 'PASS'} ${o.name} (${Math.round((Date.now() - t0) / 1000)} s)`);
      if (o.skipped) console.log(`  skipped: ${o.skipped}`);
      for (const [k, v] of Object.entries(o.figures)) console.log(`  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
      for (const p of o.problems) console.log(`  problem: ${p}`);
    }
    results.push(...outs);
  }
  const passed = results.filter((r) => !r.skipped && r.problems.length === 0).length;
  const skipped = results.filter((r) => r.skipped).length;
  const failed = results.length - passed - skipped;
  console.log(`\nreliability: ${passed} passed, ${failed} failed, ${skipped} skipped (seed ${seed})`);
  if (a.get('summary')) writeFileSync(a.get('summary')!, JSON.stringify({ passed, failed, skipped, seed, results }, null, 2));
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(e);
  process.exit(1);
});
