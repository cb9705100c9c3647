/** Where things are, found from this file's compiled location (dist/e2e/harness/). */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root. */
export const REPO = fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, '');
/** The compiled tree. */
export const DIST = join(REPO, 'dist');
/** The daemon's entry point. */
export const DAEMON_MAIN = join(DIST, 'server', 'main.js');
/** crictl, critest (built by e2e/setup-test-tools.sh). */
export const TOOLS_BIN = join(REPO, '.tools', 'bin');

/** A tool from $NAME_UPPER, <repo>/.tools/bin, or PATH, in that order. */
export function tool(name: string): string {
  const env = process.env[name.toUpperCase()];
  if (env) return env;
  const local = join(TOOLS_BIN, name);
  return existsSync(local) ? local : name;
}
