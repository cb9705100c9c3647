/**
 * A fan-out event bus for GetContainerEvents. publish() never waits: each subscriber has a
 * bounded queue, and a subscriber that falls more than `bufferSize` events behind is
 * dropped (its iterator fails, with a log line) rather than slowing the runtime or
 * growing memory without bound. The kubelet's evented PLEG re-subscribes and relists when
 * its stream ends, so dropping loses no state, only the stream.
 *
 * Events reach every subscriber in publish order. A subscriber only sees events published
 * after it subscribed.
 */
import { ResourceExhaustedError } from '../errors.js';
import type { Logger } from '../util/log.js';

export interface Subscription<T> extends AsyncIterableIterator<T> {
  /** Ends the iteration (pending next() resolves done) and unsubscribes. */
  close(): void;
  /** Events waiting to be consumed. */
  readonly pending: number;
}

export interface EventBusOptions {
  logger?: Logger;
  /** Per-subscriber queue limit; default 1000. */
  bufferSize?: number;
}

export interface SubscribeOptions {
  /** Ends the subscription when aborted (the RPC was cancelled). */
  signal?: AbortSignal;
  /** Names the subscriber in log lines (e.g. the peer address). */
  name?: string;
}

class Subscriber<T> implements Subscription<T> {
  private queue: T[] = [];
  private head = 0;
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: Error) => void } | undefined;
  private ended = false;
  private failure: Error | undefined;

  constructor(private readonly detach: (s: Subscriber<T>) => void, readonly name: string) {}

  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Returns false when the queue is full (the caller then drops this subscriber). */
  offer(ev: T, limit: number): boolean {
    if (this.ended) return true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: ev, done: false });
      return true;
    }
    if (this.pending >= limit) return false;
    this.queue.push(ev);
    return true;
  }

  fail(err: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = err;
    this.queue = [];
    this.head = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.queue.length) {
      const value = this.queue[this.head]!;
      this.queue[this.head++] = undefined as T;
      // Compact now and then instead of shifting on every event.
      if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.failure) {
      const err = this.failure;
      // Report the failure once; after that the iterator is simply done.
      this.failure = undefined;
      return Promise.reject(err);
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    if (this.waiter) return Promise.reject(new Error('event subscription: next() called while a previous next() is pending'));
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject }; });
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  close(): void {
    if (!this.ended) {
      this.ended = true;
      this.queue = [];
      this.head = 0;
    }
    this.failure = undefined;
    this.detach(this);
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export class EventBus<T> {
  private readonly subs = new Set<Subscriber<T>>();
  private readonly limit: number;
  private seq = 0;
  private closed = false;

  constructor(private readonly opts: EventBusOptions = {}) {
    this.limit = opts.bufferSize ?? 1000;
  }

  get subscriberCount(): number {
    return this.subs.size;
  }

  subscribe(opts: SubscribeOptions = {}): Subscription<T> {
    const name = opts.name ?? `subscriber-${++this.seq}`;
    const sub = new Subscriber<T>((s) => this.subs.delete(s), name);
    if (this.closed || opts.signal?.aborted) {
      sub.close();
      return sub;
    }
    this.subs.add(sub);
    if (opts.signal) {
      const onAbort = (): void => sub.close();
      opts.signal.addEventListener('abort', onAbort, { once: true });
      // Do not keep the listener (and through it the subscriber) alive after a normal close.
      const origClose = sub.close.bind(sub);
      sub.close = () => {
        opts.signal!.removeEventListener('abort', onAbort);
        origClose();
      };
    }
    return sub;
  }

  /** Delivers to every current subscriber; never blocks, never throws. */
  publish(ev: T): void {
    for (const sub of this.subs) {
      if (!sub.offer(ev, this.limit)) {
        this.subs.delete(sub);
        this.opts.logger?.warn(`events: dropping slow subscriber ${sub.name}: ${this.limit} events not consumed`);
        sub.fail(new ResourceExhaustedError(`event stream dropped: the subscriber fell ${this.limit} events behind; subscribe again and relist`));
      }
    }
  }

  /** Ends every subscription (daemon shutdown); later subscriptions end at once. */
  close(): void {
    this.closed = true;
    for (const sub of [...this.subs]) sub.close();
  }
}
