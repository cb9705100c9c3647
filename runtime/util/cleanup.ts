/**
 * A cleanup stack for multi-step creates (CRI-O's idea): each step that changes the
 * world pushes its undo right after it succeeds; if a later step fails, run() undoes
 * everything in reverse order, so a failed create leaves nothing behind. On success the
 * caller calls release() and the undos are forgotten.
 *
 * Undo failures do not stop the unwinding (a half-undone create is worse than a logged
 * error); they are collected and reported through `onError`.
 */

export type Undo = () => void | Promise<void>;

export interface CleanupError {
  step: string;
  error: unknown;
}

export class CleanupStack {
  private readonly undos: Array<{ step: string; fn: Undo }> = [];

  constructor(private readonly onError: (e: CleanupError) => void = () => undefined) {}

  /** Registers the undo of a step that just succeeded. `step` names it in error reports. */
  push(step: string, fn: Undo): void {
    this.undos.push({ step, fn });
  }

  get size(): number {
    return this.undos.length;
  }

  /** Forgets every undo: the create succeeded and now owns what it made. */
  release(): void {
    this.undos.length = 0;
  }

  /** Runs every undo in reverse order, once; returns the failures (also passed to onError). */
  async run(): Promise<CleanupError[]> {
    const errors: CleanupError[] = [];
    while (this.undos.length > 0) {
      const { step, fn } = this.undos.pop()!;
      try {
        await fn();
      } catch (error) {
        const e = { step, error };
        errors.push(e);
        this.onError(e);
      }
    }
    return errors;
  }

  /**
   * Runs `body` with this stack; if it throws, unwinds and rethrows the original error.
   * On success the stack is released.
   */
  async guard<T>(body: (stack: CleanupStack) => Promise<T>): Promise<T> {
    try {
      const out = await body(this);
      this.release();
      return out;
    } catch (err) {
      await this.run();
      throw err;
    }
  }
}
