/**
 * The bridge and ptp plugins (containernetworking-plugins up to at least 1.1.1) find the
 * pod's addresses for their ipMasq teardown by reading eth0 inside the netns; when the netns
 * is already gone, their DEL frees the IP but silently leaves the per-pod NAT chain
 * (CNI-<hash>) and its POSTROUTING jump. corral removes those itself after such a DEL, by
 * the same chain name the plugins derive from the network name and container id.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';

/** CNI-<first 24 hex digits of sha512(network name + container id)>: 28 characters, iptables' limit. */
export function masqChainName(network: string, containerId: string): string {
  return 'CNI-' + createHash('sha512').update(network + containerId).digest('hex').slice(0, 24);
}

/** Splits one line of `iptables -S` output into arguments (double quotes with backslash escapes). */
export function splitRule(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inArg = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inArg = true;
    } else if (c === ' ' || c === '\t') {
      if (inArg) out.push(cur);
      cur = '';
      inArg = false;
    } else {
      cur += c;
      inArg = true;
    }
  }
  if (inArg) out.push(cur);
  return out;
}

function ipt(bin: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['-w', '5', ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/**
 * Removes the pod's masquerade chain and the POSTROUTING rules jumping to it, for each
 * address family. A chain that does not exist is not an error (the plugin may have cleaned
 * up, or the node rebooted).
 */
export async function removeIpMasq(network: string, containerId: string, families: Array<4 | 6>, timeoutMs = 30_000): Promise<string[]> {
  const chain = masqChainName(network, containerId);
  const removed: string[] = [];
  for (const fam of families) {
    const bin = fam === 4 ? 'iptables' : 'ip6tables';
    let rules: string;
    try {
      rules = await ipt(bin, ['-t', 'nat', '-S'], timeoutMs);
    } catch {
      continue; // no ip6tables, or no nat table for this family: nothing of ours can be there
    }
    const lines = rules.split('\n');
    if (!lines.includes(`-N ${chain}`)) continue;
    for (const line of lines) {
      const args = splitRule(line);
      if (args[0] === '-A' && args[1] === 'POSTROUTING' && args[args.length - 1] === chain && args[args.length - 2] === '-j') {
        await ipt(bin, ['-t', 'nat', '-D', ...args.slice(1)], timeoutMs);
      }
    }
    await ipt(bin, ['-t', 'nat', '-F', chain], timeoutMs);
    await ipt(bin, ['-t', 'nat', '-X', chain], timeoutMs);
    removed.push(`${bin} nat ${chain}`);
  }
  return removed;
}
