/**
 * Runs a command with one test registry for all of it: builds the test images (cached), starts
 * a plain-HTTP registry on 127.0.0.1, pushes the images, exports CORRAL_E2E_REGISTRY_URL/HOST
 * (harnesses started by the command use it instead of starting their own), runs the command,
 * stops the registry, and exits with the command's status.
 *
 *   node dist/e2e/harness/with-registry.js [--variant plain|tls] -- CMD [ARGS...]
 */
import { spawn } from 'node:child_process';
import { registryEnv, startRegistryWithImages } from './registry.js';

async function main(argv: string[]): Promise<number> {
  let variant = 'plain';
  let i = 0;
  for (; i < argv.length; i++) {
    if (argv[i] === '--variant') variant = argv[++i] ?? 'plain';
    else if (argv[i] === '--') { i++; break; } else break;
  }
  const cmd = argv.slice(i);
  if (cmd.length === 0) throw new Error('usage: with-registry.js [--variant V] -- CMD [ARGS...]');
  const t0 = Date.now();
  const reg = await startRegistryWithImages(variant);
  console.error(`with-registry: ${variant} registry at ${reg.url} with the test images (${Date.now() - t0} ms)`);
  try {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: 'inherit', env: { ...process.env, ...registryEnv(reg) } });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    return await new Promise<number>((resolve) => {
      child.on('error', (e) => {
        console.error(`with-registry: ${cmd[0]}: ${e.message}`);
        resolve(127);
      });
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  } finally {
    await reg.stop();
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: Error) => {
    console.error(`with-registry: ${e.message}`);
    process.exitCode = 2;
  },
);
