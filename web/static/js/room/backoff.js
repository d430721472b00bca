// When to reconnect, and when not to (docs/signaling.md, "Reconnection").

/** Close codes after which coming back cannot help: bad message, refused, ended, removed, denied, replaced. */
export const FINAL_CLOSE_CODES = new Set([1000, 4000, 4001, 4003, 4004, 4100, 4101, 4102, 4103]);

const FIRST_MS = 1000;
const CAP_MS = 15_000;

/**
 * Whether a socket closed with `code` should be reopened by itself.
 * @param {number} code
 */
export function shouldReconnect(code) {
  return !FINAL_CLOSE_CODES.has(code);
}

/**
 * The wait before reconnect attempt `attempt` (0 first): 1 s, 2 s, 4 s … at most 15 s, each
 * ±20 % so that sixty pages cut off together do not come back in the same instant.
 * @param {number} attempt
 * @param {() => number} [random] a number in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(CAP_MS, FIRST_MS * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}
