/** Milliseconds on a monotonic clock. The protocol core only ever sees `nowMs` values. */
export interface Clock {
  now(): number;
}

export const monotonicClock: Clock = {
  now: () => performance.now(),
};

export class ManualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
}
