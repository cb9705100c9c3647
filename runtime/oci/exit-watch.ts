/**
 * Watches conmon's exit directory: conmon writes <dir>/<container id> holding the exit
 * code when the container's init exits. fs.watch is inotify underneath; a scan at start
 * picks up the exits that happened while corral was down, and `check(id)` lets a waiter
 * look again in case an event was coalesced away.
 *
 * conmon writes the file with GLib's g_file_set_contents: the code goes into a temp file
 * "<id>.XXXXXX" that is then renamed to "<id>". Names with a dot are those temp files
 * (container ids never have one): they are ignored, and must never be touched, or the
 * rename fails and the exit is lost. An empty file is reported once the code is there.
 */
import { watch, promises as fs, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { isENOENT } from '../errors.js';

export interface ExitRecord {
  id: string;
  exitCode: number;
  /** When conmon wrote the file: the container's finish time, also for exits seen late. */
  finishedAtMs: number;
}

export async function readExitFile(path: string, id: string): Promise<ExitRecord | undefined> {
  try {
    const [text, st] = await Promise.all([fs.readFile(path, 'utf8'), fs.stat(path)]);
    const t = text.trim();
    if (!/^-?\d+$/.test(t)) return undefined;
    return { id, exitCode: Number.parseInt(t, 10), finishedAtMs: st.mtimeMs };
  } catch (err) {
    if (isENOENT(err)) return undefined;
    throw err;
  }
}

export class ExitWatcher {
  private watcher?: FSWatcher;
  private readonly seen = new Set<string>();

  constructor(readonly dir: string, private readonly onExit: (e: ExitRecord) => unknown) {}

  /** Starts watching, then reports every exit file already there (and waits for their handling). */
  async start(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.watcher = watch(this.dir, { persistent: false }, (_event, name) => {
      if (name) void this.check(String(name));
    });
    this.watcher.on('error', () => undefined);
    for (const name of await fs.readdir(this.dir)) await this.check(name);
  }

  /** Looks at one id's exit file and reports it once; resolves after the handler. */
  async check(id: string): Promise<ExitRecord | undefined> {
    if (!id || id.includes('/') || id.includes('.')) return undefined;
    const rec = await readExitFile(join(this.dir, id), id).catch(() => undefined);
    if (rec && !this.seen.has(id)) {
      this.seen.add(id);
      await this.onExit(rec);
    }
    return rec;
  }

  /** Deletes an id's exit file and forgets it (at container removal). */
  async forget(id: string): Promise<void> {
    this.seen.delete(id);
    await fs.rm(join(this.dir, id), { force: true });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}
