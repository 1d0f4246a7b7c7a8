/**
 * The rate search shared by the macro benchmarks: double the rate while steps pass,
 * halve it while none has, then bisect geometrically between the highest passing and
 * the lowest failing rate; and the choice of the result once the steps are done.
 */

/** Steps below this rate are not tried (calls/s). */
export const MIN_RATE = 10;
/** A step passes with fewer failed calls than this share. */
export const MAX_FAILED = 0.01;

export type Verdict = 'pass' | 'failed' | 'slow';

/** What the search reads of a step. */
export interface RampStep {
  readonly rate: number;
  readonly calls: number;
  readonly failed: number;
  /** The rate sipp achieved, when it could be measured. */
  readonly achieved: number | undefined;
  readonly verdict: Verdict;
  /** True when this step repeats the one before it (a marginal result). */
  readonly repeat: boolean;
}

/** Two significant digits: 2828 -> 2800. */
export function roundRate(rate: number): number {
  const scale = 10 ** Math.max(0, Math.floor(Math.log10(rate)) - 1);
  return Math.max(MIN_RATE, Math.round(rate / scale) * scale);
}

/**
 * The next rate to try after a step at `rate`, given the highest passing and lowest
 * failing rates so far (already updated with this step), or undefined when the search
 * has converged to within `resolution` (the fail/pass ratio) or cannot go lower.
 */
export function nextRate(
  rate: number,
  pass: number | undefined,
  fail: number | undefined,
  resolution: number,
): number | undefined {
  let next: number;
  if (fail === undefined) next = roundRate(rate * 2);
  else if (pass === undefined) next = roundRate(rate / 2);
  else {
    if (fail / pass <= resolution) return undefined;
    next = roundRate(Math.sqrt(pass * fail));
    if (next <= pass || next >= fail) return undefined;
  }
  if (next === rate || (pass === undefined && rate <= MIN_RATE)) return undefined;
  return next;
}

/**
 * The best step (highest achieved rate among steps under MAX_FAILED) and the limit (the
 * lowest non-passing rate at or above it: the best step itself when sipp placed its calls
 * too slowly). A step followed by its repeat does not count: the repeat decides.
 */
export function rampResult<S extends RampStep>(
  steps: readonly S[],
): { best: S | undefined; limit: S | undefined } {
  const decided = steps.filter((_, k) => steps[k + 1]?.repeat !== true);
  const ok = decided.filter((s) => s.failed < MAX_FAILED * s.calls && s.achieved !== undefined);
  const best = ok.reduce<S | undefined>(
    (a, s) => (a === undefined || s.achieved! > a.achieved! ? s : a),
    undefined,
  );
  const above = decided
    .filter((s) => s.verdict !== 'pass' && (best === undefined || s.rate >= best.rate))
    .sort((a, b) => a.rate - b.rate);
  return { best, limit: above[0] };
}
