// Test support: Pearson's chi-square goodness of fit, for tests that check sampled tokens
// follow a known distribution.

/** Upper tail of chi-square with `dof` degrees of freedom (Wilson-Hilferty; accurate to ~1e-3 for p-values of interest). */
export function chiSquarePValue(statistic: number, dof: number): number {
  const z = (Math.cbrt(statistic / dof) - (1 - 2 / (9 * dof))) / Math.sqrt(2 / (9 * dof));
  return 0.5 * erfc(z / Math.SQRT2);
}

/**
 * P-value of `counts` (token id -> times drawn) against the law `p`: every token expected at
 * least `minExpected` times is a category of its own, the others share one (so no category's
 * expectation is too small for the chi-square approximation).
 */
export function goodnessOfFit(counts: ReadonlyMap<number, number>, p: ArrayLike<number>, minExpected = 5): number {
  const n = [...counts.values()].reduce((a, b) => a + b, 0);
  let statistic = 0;
  let categories = 0;
  let restExpected = 0;
  let restObserved = 0;
  for (let v = 0; v < p.length; v++) {
    const expected = p[v]! * n;
    const observed = counts.get(v) ?? 0;
    if (expected >= minExpected) {
      statistic += (observed - expected) ** 2 / expected;
      categories++;
    } else {
      restExpected += expected;
      restObserved += observed;
    }
  }
  if (restExpected > 0) {
    statistic += (restObserved - restExpected) ** 2 / restExpected;
    categories++;
  }
  return chiSquarePValue(statistic, categories - 1);
}

function erfc(x: number): number {
  // Numerical Recipes erfc (fractional error < 1.2e-7).
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y = t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851413 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? y : 2 - y;
}
