/**
 * Floating-point formatting as C++ `std::to_chars(value)` writes it, which is what onnx.printer
 * uses: the shortest digits that read back to the same value, in fixed or scientific notation,
 * whichever is shorter (fixed on a tie), the exponent with a sign and at least two digits
 * (`1e+05`, `1e-07`, `0.001`, `123456`, `0.33333334`), and `nan`/`-nan`/`inf`/`-inf`.
 */

/** Formats a float32 value (`negativeNaN` because a JS NaN has no readable sign). */
export function formatFloat32(value: number, negativeNaN = false): string {
  if (Number.isNaN(value)) return negativeNaN ? "-nan" : "nan";
  return formatShortest(Math.fround(value), shortestFloat32Digits);
}

export function formatFloat64(value: number, negativeNaN = false): string {
  if (Number.isNaN(value)) return negativeNaN ? "-nan" : "nan";
  return formatShortest(value, (x) => x.toExponential());
}

function formatShortest(value: number, exponential: (x: number) => string): string {
  if (value === Infinity) return "inf";
  if (value === -Infinity) return "-inf";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const sign = value < 0 ? "-" : "";
  const [mantissa, exp] = exponential(Math.abs(value)).split("e");
  const digits = mantissa!.replace(".", "");
  const e = Number(exp);
  const scientific = `${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ""}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  const fixed = fixedNotation(digits, e);
  return sign + (fixed.length <= scientific.length ? fixed : scientific);
}

/** `digits` (d.ddd) times 10^e, written without an exponent. */
function fixedNotation(digits: string, e: number): string {
  if (e < 0) return `0.${"0".repeat(-e - 1)}${digits}`;
  if (digits.length <= e + 1) return digits + "0".repeat(e + 1 - digits.length);
  return `${digits.slice(0, e + 1)}.${digits.slice(e + 1)}`;
}

/**
 * The fewest significant digits (as `toExponential` writes them) that read back as the same
 * float32. More digits never stop reading back, so a binary search over 1..9 finds it.
 */
function shortestFloat32Digits(x: number): string {
  let lo = 1;
  let hi = 9;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (Math.fround(Number(x.toExponential(mid - 1))) === x) hi = mid;
    else lo = mid + 1;
  }
  return x.toExponential(lo - 1);
}
