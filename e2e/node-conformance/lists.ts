/**
 * The two committed lists the node conformance runner holds corral to:
 *
 * floor           one spec name per line (ginkgo's full text without "[It] "): specs that passed
 *                 on corral. One of them failing fails the run. It only rises: --update-floor
 *                 adds what passed, and nothing removes a name but a person with a reason.
 * known-failures  specs that cannot pass on this kind of host, each with the reason:
 *                   <spec name>
 *                       reason: <why, in one line>
 *                 The runner skips them (unless --run-known) and prints them with their reason.
 * ci-excluded     specs that pass but are left out of the CI set to fit its time budget (the
 *                 long waits: restart back-offs, grace periods, probe timeouts), same format, the
 *                 reason giving the duration measured. The full run (--set conformance) has them.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../harness/paths.js';

export const FLOOR_FILE = join(REPO, 'e2e', 'node-conformance', 'floor');
export const KNOWN_FILE = join(REPO, 'e2e', 'node-conformance', 'known-failures');
export const CI_EXCLUDED_FILE = join(REPO, 'e2e', 'node-conformance', 'ci-excluded');
export const SUITE_VERSION = 'v1.37.2';

export interface Known { reason: string }

export function readFloor(file = FLOOR_FILE): Set<string> {
  if (!existsSync(file)) return new Set();
  return new Set(readFileSync(file, 'utf8').split('\n').map((l) => l.trimEnd()).filter((l) => l && !l.startsWith('#')));
}

export function writeFloor(names: Set<string>, file = FLOOR_FILE): void {
  writeFileSync(
    file,
    `# Node conformance specs (k8s.io/kubernetes test/e2e_node ${SUITE_VERSION}) that pass on corral; one failing fails the run.\n`
      + '# Raised by: node dist/e2e/node-conformance/run.js --update-floor  (adds what passed; never removes)\n'
      + [...names].sort().map((n) => `${n}\n`).join(''),
  );
}

export function parseKnown(text: string): Map<string, Known> {
  const out = new Map<string, Known>();
  let name: string | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const reason = /^\s+reason:\s*(.*)$/.exec(line);
    if (reason) {
      if (!name) throw new Error(`known-failures: a reason without a spec: ${line.trim()}`);
      out.set(name, { reason: reason[1]!.trim() });
      name = undefined;
    } else if (/^\s/.test(line)) {
      throw new Error(`known-failures: unexpected indented line: ${line.trim()}`);
    } else {
      if (name) throw new Error(`known-failures: no reason for ${name}`);
      name = line.trimEnd();
    }
  }
  if (name) throw new Error(`known-failures: no reason for ${name}`);
  return out;
}

export function readKnown(file = KNOWN_FILE): Map<string, Known> {
  return existsSync(file) ? parseKnown(readFileSync(file, 'utf8')) : new Map();
}

export function readCiExcluded(file = CI_EXCLUDED_FILE): Map<string, Known> {
  return existsSync(file) ? parseKnown(readFileSync(file, 'utf8')) : new Map();
}

/**
 * A regular expression for ginkgo's --skip that matches these specs. Names here are the JUnit
 * report's: the spec's full text, then its labels in brackets ("... [NodeConformance] [sig-node,
 * NodeConformance]"); ginkgo matches --skip against the full text alone, so the labels go.
 */
export function namesRegex(names: string[]): string {
  return names
    .map((n) => n.replace(/ \[[^[\]]*, [^[\]]*\]$/, ''))
    .map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('|');
}

/** A spec name's labels: the trailing bracket group of the JUnit name ("[sig-node, NodeConformance]"). */
export function specLabels(name: string): string[] {
  const m = / \[([^[\]]*)\]$/.exec(name);
  return m ? m[1]!.split(',').map((l) => l.trim()).filter(Boolean) : [];
}

/**
 * Whether labels satisfy a ginkgo label filter of the shape the sets use: labels joined by
 * &&, || and !, with parentheses. (Ginkgo's own filters have more: regexes, set operations.)
 */
export function matchesLabelFilter(filter: string, labels: string[]): boolean {
  const tokens = filter.match(/&&|\|\||!|\(|\)|[^\s&|!()]+/g) ?? [];
  let i = 0;
  const has = new Set(labels.map((l) => l.toLowerCase()));
  const or = (): boolean => {
    let v = and();
    while (tokens[i] === '||') { i++; v = and() || v; }
    return v;
  };
  const and = (): boolean => {
    let v = not();
    while (tokens[i] === '&&') { i++; v = not() && v; }
    return v;
  };
  const not = (): boolean => {
    if (tokens[i] === '!') { i++; return !not(); }
    if (tokens[i] === '(') {
      i++;
      const v = or();
      if (tokens[i++] !== ')') throw new Error(`label filter ${JSON.stringify(filter)}: ")" expected`);
      return v;
    }
    const label = tokens[i++];
    if (label === undefined) throw new Error(`label filter ${JSON.stringify(filter)}: a label expected`);
    return has.has(label.toLowerCase());
  };
  const v = or();
  if (i !== tokens.length) throw new Error(`label filter ${JSON.stringify(filter)}: unexpected ${tokens[i]}`);
  return v;
}
