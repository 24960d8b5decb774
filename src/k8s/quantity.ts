// Kubernetes resource quantities ("500m", "1Gi", "1e3") as exact numbers.
// The API server stores a quantity in its canonical spelling ("1024Mi" comes
// back as "1Gi", "0.5" as "500m"), so a string comparison would see drift
// where there is none and rewrite forever. Floating point would be just as
// wrong in the other direction (two different quantities could round to the
// same double), so a quantity becomes a reduced fraction of BigInts.

const BINARY_SUFFIXES: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL_SUFFIXES: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;
/** Larger exponents are no resource anyone means; refusing them keeps BigInt math bounded. */
const MAX_EXPONENT = 64;

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

/**
 * The exact value of a quantity as "numerator/denominator" in lowest terms,
 * or undefined when the text is not a quantity.
 */
export function canonicalQuantity(text: string): string | undefined {
  const match = QUANTITY.exec(text);
  if (!match) return undefined;
  const [, sign = '', number = '', suffix = ''] = match;
  const [whole = '', fraction = ''] = number.split('.');
  let numerator = BigInt(`${whole || '0'}${fraction}`) * (sign === '-' ? -1n : 1n);
  let denominator = 10n ** BigInt(fraction.length);
  let decimalExponent: number;
  if (suffix in BINARY_SUFFIXES) {
    numerator *= 2n ** BigInt(10 * (BINARY_SUFFIXES[suffix] ?? 0));
    decimalExponent = 0;
  } else if (suffix in DECIMAL_SUFFIXES) {
    decimalExponent = DECIMAL_SUFFIXES[suffix] ?? 0;
  } else {
    decimalExponent = Number(suffix.slice(1));
  }
  if (Math.abs(decimalExponent) > MAX_EXPONENT) return undefined;
  if (decimalExponent >= 0) numerator *= 10n ** BigInt(decimalExponent);
  else denominator *= 10n ** BigInt(-decimalExponent);
  const divisor = gcd(numerator, denominator);
  if (divisor > 1n) {
    numerator /= divisor;
    denominator /= divisor;
  }
  return `${numerator}/${denominator}`;
}
