/** Reconnect and retry delays: exponential backoff with full jitter. */

/** Backoff settings; every field is in milliseconds. */
export interface BackoffOptions {
  /** Cap of the first delay (default 500). */
  initial?: number;
  /** Largest cap, reached after a few failures (default 20000). */
  max?: number;
  /** A connection that stayed up this long resets the failure count (default 10000). */
  stableAfter?: number;
}

/**
 * The delay before retry number `attempt` (0 for the first): a uniformly random value in
 * `[0, min(max, initial * 2^attempt))` ("full jitter"), so that clients dropped together do not
 * come back together. There is no attempt limit: the cap stays at `max`.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.max ?? 20000, (options.initial ?? 500) * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}
