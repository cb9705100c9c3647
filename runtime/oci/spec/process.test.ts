import test from 'ava';
import { InvalidArgumentError } from '../../errors.js';
import { containerConfig, fakeDeps, specContext, specInput } from './fixtures.js';
import { buildExecProcess, containerArgs, DEFAULT_PATH, overlayEnv, withProcess } from './process.js';

const argRows: Array<[string, string[], string[], string[], string[], string[]]> = [
  // title, command, args, Entrypoint, Cmd, expected
  ['image only', [], [], ['/entry'], ['cmd1'], ['/entry', 'cmd1']],
  ['args replace Cmd', [], ['a1'], ['/entry'], ['cmd1'], ['/entry', 'a1']],
  ['command replaces Entrypoint and drops Cmd', ['/bin/x'], [], ['/entry'], ['cmd1'], ['/bin/x']],
  ['command and args', ['/bin/x'], ['a1', 'a2'], ['/entry'], ['cmd1'], ['/bin/x', 'a1', 'a2']],
  ['no Entrypoint: Cmd', [], [], [], ['sh', '-c', 'true'], ['sh', '-c', 'true']],
  ['no Entrypoint: args alone', [], ['echo', 'hi'], [], ['sh'], ['echo', 'hi']],
];
for (const [title, command, args, entrypoint, cmd, want] of argRows) {
  test(`process args: ${title}`, (t) => {
    t.deepEqual(containerArgs(command, args, entrypoint, cmd), want);
  });
}

test('process: withProcess applies the image config and the request', async (t) => {
  const input = specInput({
    config: containerConfig({
      args: ['echo', 'hi'], working_dir: '', tty: true,
      envs: [{ key: 'A', value: Buffer.from('request') }, { key: 'B', value: Buffer.from('b=c') }, { key: 'A', value: Buffer.from('last') }],
    }, { no_new_privs: true }),
    image: { id: 'img', config: { config: { Env: ['PATH=/img/bin', 'A=image', 'C=image'], Entrypoint: ['/entry'], Cmd: ['x'], WorkingDir: '/work' } } },
  });
  const { spec, ctx } = specContext(input);
  await withProcess(spec, ctx);
  t.deepEqual(spec.process.args, ['/entry', 'echo', 'hi']);
  t.deepEqual(spec.process.env, ['HOSTNAME=pod-host', 'PATH=/img/bin', 'A=last', 'C=image', 'B=b=c']);
  t.is(spec.process.cwd, '/work');
  t.true(spec.process.terminal);
  t.true(spec.process.noNewPrivileges);
  t.deepEqual(spec.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }]);
  t.deepEqual(ctx.warnings, []);
});

test('process: PATH default, cwd default, CRI working_dir wins', async (t) => {
  const { spec, ctx } = specContext(specInput({
    config: containerConfig({ command: ['/bin/true'], working_dir: '/srv' }),
    image: { id: 'img', config: { config: { WorkingDir: '/work' } } },
  }));
  await withProcess(spec, ctx);
  t.true(spec.process.env.includes(`PATH=${DEFAULT_PATH}`));
  t.is(spec.process.cwd, '/srv');

  const other = specContext(specInput({ config: containerConfig({ command: ['/bin/true'] }), image: { id: 'img', config: {} } }));
  await withProcess(other.spec, other.ctx);
  t.is(other.spec.process.cwd, '/');
});

test('process: no command at all, relative cwd', async (t) => {
  const a = specContext(specInput({ config: containerConfig({}), image: { id: 'img', config: { config: {} } } }));
  await t.throwsAsync(async () => withProcess(a.spec, a.ctx), { instanceOf: InvalidArgumentError, message: /no command specified/ });
  const b = specContext(specInput({ config: containerConfig({ command: ['x'], working_dir: 'rel' }) }));
  await t.throwsAsync(async () => withProcess(b.spec, b.ctx), { instanceOf: InvalidArgumentError, message: /not an absolute path/ });
});

test('process: RLIMIT_NOFILE clamped to the daemon hard limit', async (t) => {
  const { spec, ctx } = specContext(specInput(), fakeDeps({}, { nofileHardLimit: async () => 20000 }));
  await withProcess(spec, ctx);
  t.deepEqual(spec.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 20000, soft: 20000 }]);
  t.regex(ctx.warnings.join('\n'), /RLIMIT_NOFILE lowered/);
});

test('process: overlayEnv keeps first position and last value', (t) => {
  t.deepEqual(overlayEnv(['A=1', 'B=2'], ['B=3', 'C=4'], ['A=5', 'NOVALUE']), ['A=5', 'B=3', 'C=4', 'NOVALUE']);
});

test('process: buildExecProcess keeps user/env/cwd/caps, replaces args and terminal', async (t) => {
  const { spec, ctx } = specContext();
  await withProcess(spec, ctx);
  spec.process.user = { uid: 5, gid: 6, additionalGids: [6, 7] };
  spec.process.capabilities = { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], inheritable: [], ambient: [] };
  const p = buildExecProcess(spec, ['ls', '-l'], true);
  t.deepEqual(p.args, ['ls', '-l']);
  t.true(p.terminal);
  t.deepEqual(p.user, spec.process.user);
  t.deepEqual(p.env, spec.process.env);
  t.is(p.cwd, spec.process.cwd);
  t.deepEqual(p.capabilities, spec.process.capabilities);
  p.env.push('X=1');
  t.false(spec.process.env.includes('X=1'), 'a copy, not the spec itself');
  t.throws(() => buildExecProcess(spec, [], false), { instanceOf: InvalidArgumentError });
});
