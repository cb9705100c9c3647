/** A recording fake of Syscalls for unit tests: every call is appended to `calls`. */
import type { Syscalls } from './syscalls.js';

export interface RecordedCall { name: keyof Syscalls; args: unknown[] }

export class FakeSyscalls implements Syscalls {
  readonly calls: RecordedCall[] = [];
  /** Set to make the next call of that name throw. */
  failNext: Partial<Record<keyof Syscalls, Error>> = {};
  private tid = 1000;

  private rec(name: keyof Syscalls, args: unknown[]): void {
    this.calls.push({ name, args });
    const err = this.failNext[name];
    if (err) {
      delete this.failNext[name];
      throw err;
    }
  }
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
    this.rec('mount', [source, target, fstype, flags, data]);
  }
  umount2(target: string, flags: number): void { this.rec('umount2', [target, flags]); }
  // Recorded under the synchronous names: tests count mounts, not how they were made.
  async mountAsync(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void> {
    this.mount(source, target, fstype, flags, data);
  }
  async umount2Async(target: string, flags: number): Promise<void> { this.umount2(target, flags); }
  unshare(flags: number): void { this.rec('unshare', [flags]); }
  setns(fd: number, nstype: number): void { this.rec('setns', [fd, nstype]); }
  sethostname(name: string): void { this.rec('sethostname', [name]); }
  gettid(): number { this.rec('gettid', []); return this.tid++; }
}
