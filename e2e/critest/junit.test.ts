import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSpec, parseJUnit } from './junit.js';
import { readFloor, writeFloor } from './floor.js';

// Shaped like ginkgo v2's JUnit report as critest v1.37 writes it.
const SAMPLE = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" disabled="1" errors="0" failures="1" time="3.5">
  <testsuite name="CRI validation" tests="4" skipped="1" failures="1">
    <testcase name="[BeforeSuite]" classname="CRI validation" status="passed" time="0.0002"></testcase>
    <testcase name="[It] [k8s.io] Idempotence RemoveImage should not return an error if not found" classname="CRI validation" status="passed" time="0.012">
      <system-err>&gt; Enter [It] ...</system-err>
    </testcase>
    <testcase name="[It] [k8s.io] Streaming runtime should support attach [Conformance]" classname="CRI validation" status="failed" time="0.5">
      <failure message="failed to attach in container &quot;abc&quot;&#xA;Unexpected error: &lt;nil&gt;" type="failed">[FAILED] long text</failure>
    </testcase>
    <testcase name="[It] [k8s.io] NRI lifecycle [Serial]" classname="CRI validation" status="skipped" time="0.01">
      <skipped message="skipped - NRI socket not set"></skipped>
    </testcase>
    <testcase name="[It] [k8s.io] Networking port mapping" classname="CRI validation" status="timedout" time="60"></testcase>
    <testcase name="[It] legacy writer with only a failure element" classname="x" time="1"><failure message="boom"/></testcase>
  </testsuite>
</testsuites>`;

test('parseJUnit: statuses, messages and entities from a ginkgo report', (t) => {
  const r = parseJUnit(SAMPLE);
  t.is(r.length, 6);
  const specs = r.filter(isSpec);
  t.is(specs.length, 5, 'the BeforeSuite node is not a spec');
  const by = new Map(specs.map((s) => [s.name, s]));
  t.is(by.get('[It] [k8s.io] Idempotence RemoveImage should not return an error if not found')!.status, 'passed');
  const attach = by.get('[It] [k8s.io] Streaming runtime should support attach [Conformance]')!;
  t.is(attach.status, 'failed');
  t.is(attach.message, 'failed to attach in container "abc" | Unexpected error: <nil>');
  t.is(attach.seconds, 0.5);
  t.is(by.get('[It] [k8s.io] NRI lifecycle [Serial]')!.status, 'skipped');
  t.is(by.get('[It] [k8s.io] Networking port mapping')!.status, 'failed', 'timedout counts as failed');
  t.is(by.get('[It] legacy writer with only a failure element')!.status, 'failed');
  t.is(by.get('[It] legacy writer with only a failure element')!.message, 'boom');
});

test('parseJUnit: an empty or truncated report gives no specs', (t) => {
  t.deepEqual(parseJUnit(''), []);
  t.deepEqual(parseJUnit('<testsuites><testsuite name="x"><testcase name="[It] a"'), []);
});

test('floor file: read defaults, round trip, unknown keys kept', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-floor-'));
  try {
    const file = join(dir, 'critest-floor');
    t.deepEqual(readFloor(file), { spdy: 0, websocket: 0 }, 'a missing file is all zeros');
    writeFileSync(file, '# comment\nspdy: 90\nwebsocket = 5\n  v2: 15  \nnot a line\n');
    t.deepEqual(readFloor(file), { spdy: 90, websocket: 5, v2: 15 });
    writeFloor({ ...readFloor(file), spdy: 96 }, file);
    t.deepEqual(readFloor(file), { spdy: 96, websocket: 5, v2: 15 });
    t.regex(readFileSync(file, 'utf8'), /^# Passing critest v1\.37\.0 specs/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
