// The messages waiting to be received, and how the client ended once it has.

/** A queue of messages that `receive` takes from, one waiter at a time, in order. */
export class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: { resolve(value: T): void; reject(error: Error): void }[] = [];
  private ended: Error | null = null;

  /** Hand `item` to the first waiter, or keep it. */
  put(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter.resolve(item);
    else this.items.push(item);
  }

  /** No more items: once the kept ones are taken, `take` rejects with `error`. */
  end(error: Error): void {
    if (this.ended !== null) return;
    this.ended = error;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  /** The next item, waiting for it. */
  take(): Promise<T> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift() as T);
    if (this.ended !== null) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}
