/**
 * Pull benchmark (issue 4): the ~216 MiB multi-layer "large" test image from a local registry
 * into a cold store, against the floor of fetching the same blobs with curl piped through
 * `tar -xz`, one after another. Also the latency of pulling the image again when present.
 *
 *   node dist/e2e/bench/pull.js [--runs N]        (root: unpacking preserves ownership)
 *
 * corral is measured in-process through ImageService (no gRPC, no crictl), with the daemon's
 * default pull settings; the runs alternate floor and corral so that both see the same load.
 * Prints one JSON line per measurement and a summary.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from '../../runtime/config.js';
import { ImageService } from '../../runtime/image/service.js';
import { linux } from '../../runtime/linux/syscalls.js';
import { silentLogger } from '../../runtime/util/log.js';
import { DIST, REPO } from '../harness/paths.js';
import { pushImages, startRegistry } from '../registry/registry.js';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 3) || 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function sh(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${script}: exit ${code}`))));
  });
}

async function main(): Promise<void> {
  const imagesDir = process.env.CORRAL_E2E_IMAGES || join(REPO, '.tools', 'images');
  mkdirSync(imagesDir, { recursive: true });
  execFileSync(process.execPath, [join(DIST, 'e2e', 'images', 'build.js'), imagesDir, '--large', '--quiet'], { stdio: 'inherit' });
  const reg = await startRegistry({ variant: 'plain' });
  const work = mkdtempSync(join(tmpdir(), 'corral-bench-pull-'));
  try {
    const pushed = await pushImages(reg, imagesDir, ['large']);
    const ref = pushed[0]!.reference;
    const repo = pushed[0]!.repository;
    const manifest = JSON.parse(execFileSync('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `${reg.url}/v2/${repo}/manifests/${pushed[0]!.tag}`]).toString());
    const layers = manifest.layers as Array<{ digest: string; size: number }>;
    const bytes = layers.reduce((a, l) => a + l.size, 0) + manifest.config.size;
    const mb = bytes / 1e6;
    const floor: number[] = [];
    const corral: number[] = [];
    const again: number[] = [];
    for (let i = 0; i < runs; i++) {
      const out = join(work, `floor-${i}`);
      mkdirSync(out);
      const script = layers.map((l) => `curl -sf ${reg.url}/v2/${repo}/blobs/${l.digest} | tar -xzf - -C ${out}`).join(' && ');
      let t0 = performance.now();
      await sh(script);
      floor.push((performance.now() - t0) / 1000);
      rmSync(out, { recursive: true, force: true });

      const config = defaultConfig();
      config.root_dir = join(work, `corral-${i}`);
      const svc = await ImageService.create({ config, logger: silentLogger(), syscalls: linux });
      // A daemon starts its unpack workers at boot, long before a pull: do not time their start.
      await svc.ready();
      t0 = performance.now();
      await svc.pull(ref, null, new AbortController().signal);
      corral.push((performance.now() - t0) / 1000);
      for (let k = 0; k < 5; k++) {
        t0 = performance.now();
        await svc.pull(ref, null, new AbortController().signal);
        again.push(performance.now() - t0);
      }
      await svc.close();
      rmSync(config.root_dir, { recursive: true, force: true });
      console.log(JSON.stringify({ run: i, floorS: floor[i], corralS: corral[i] }));
    }
    const f = median(floor);
    const c = median(corral);
    console.log(JSON.stringify({
      image: ref, layers: layers.length, compressedMB: Number(mb.toFixed(1)), runs,
      floorMBps: Number((mb / f).toFixed(1)), corralMBps: Number((mb / c).toFixed(1)), speedup: Number((f / c).toFixed(2)),
      secondPullMs: Number(median(again).toFixed(1)), goal: 'speedup >= 1.5, secondPullMs < 50',
    }));
  } finally {
    rmSync(work, { recursive: true, force: true });
    await reg.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
