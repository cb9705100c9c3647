/** Reading ginkgo's JUnit report: one result per spec. */

export type SpecStatus = 'passed' | 'failed' | 'skipped';

export interface SpecResult {
  name: string;
  status: SpecStatus;
  seconds: number;
  /** First lines of the failure message. */
  message: string;
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&amp;/g, '&');
}

function attrs(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of s.matchAll(/([\w:-]+)="([^"]*)"/g)) out[m[1]!] = unescapeXml(m[2]!);
  return out;
}

/**
 * Parses every <testcase>. Ginkgo writes a `status` attribute (passed, failed, skipped,
 * pending, panicked, interrupted, timedout, aborted); older writers only nest <failure>,
 * <error> or <skipped>, which is the fallback.
 */
export function parseJUnit(xml: string): SpecResult[] {
  const out: SpecResult[] = [];
  const re = /<testcase\b([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const m of xml.matchAll(re)) {
    const a = attrs(m[1]!);
    const body = m[2] ?? '';
    let status: SpecStatus;
    const s = a.status;
    if (s === 'passed') status = 'passed';
    else if (s === 'skipped' || s === 'pending') status = 'skipped';
    else if (s) status = 'failed';
    else if (/<(failure|error)\b/.test(body)) status = 'failed';
    else if (/<skipped\b/.test(body)) status = 'skipped';
    else status = 'passed';
    let message = '';
    const f = /<(?:failure|error)\b([^>]*)>([\s\S]*?)<\/(?:failure|error)>/.exec(body) ?? /<(?:failure|error)\b([^>]*)\/>/.exec(body);
    if (f) message = unescapeXml(attrs(f[1]!).message ?? f[2] ?? '');
    out.push({ name: a.name ?? '?', status, seconds: Number(a.time ?? 0), message: message.trim().split('\n').slice(0, 3).join(' | ') });
  }
  return out;
}

/** Specs are the [It] nodes; suite-level nodes (BeforeSuite, ReportAfterSuite...) are not. */
export function isSpec(r: SpecResult): boolean {
  return r.name.startsWith('[It]') || !/^\[(BeforeSuite|AfterSuite|SynchronizedBeforeSuite|SynchronizedAfterSuite|ReportBeforeSuite|ReportAfterSuite|DeferCleanup)/.test(r.name);
}
