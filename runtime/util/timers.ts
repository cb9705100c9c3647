/** setTimeout's longest delay (2^31-1 ms, ~24.8 days); Node fires a longer one at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
