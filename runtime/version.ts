/** corral's version, read once from package.json so there is one source of truth. */
import { readFileSync } from 'node:fs';

function read(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'corral' && pkg.version) return pkg.version;
    } catch { /* try the next */ }
  }
  return '0.0.0';
}

export const CORRAL_VERSION = read();
