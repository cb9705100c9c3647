/** The committed critest floor (e2e/critest-floor): passing specs per run that must keep passing. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../harness/paths.js';

export const FLOOR_FILE = join(REPO, 'e2e', 'critest-floor');
export const CRITEST_VERSION = 'v1.37.0';

/** "key: N" lines; keys: spdy, websocket (the two full runs), v2 (the cgroup v2 leg's subset). */
export function readFloor(file = FLOOR_FILE): Record<string, number> {
  const floor: Record<string, number> = { spdy: 0, websocket: 0 };
  if (!existsSync(file)) return floor;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([\w-]+)\s*[:=]\s*(\d+)\s*$/.exec(line);
    if (m) floor[m[1]!] = Number(m[2]);
  }
  return floor;
}

export function writeFloor(floor: Record<string, number>, file = FLOOR_FILE): void {
  writeFileSync(
    file,
    `# Passing critest ${CRITEST_VERSION} specs against corral (e2e/critest/run.ts); a run with fewer fails.\n`
      + '# Whoever makes more specs pass raises the numbers in the same commit:\n'
      + '#   node dist/e2e/critest/run.js --update-floor    (v2: e2e/v2/run.sh --update-floor)\n'
      + Object.entries(floor).map(([k, v]) => `${k}: ${v}\n`).join(''),
  );
}

