// Runs a mode's kernel work one call at a time (syncs, reaps, cleanup never overlap), in call
// order; a failed call does not stop the ones after it.
export class Serial {
  private busy: Promise<unknown> = Promise.resolve();

  run<T>(f: () => Promise<T>): Promise<T> {
    const next = this.busy.then(f, f);
    this.busy = next.catch(() => undefined);
    return next;
  }
}
