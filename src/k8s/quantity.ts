// Resource quantities in the canonical form the API server writes back into
// a ResourceList (quota, limits, requests): rounded up to thousandths, then
// resource.Quantity's CanonicalizeBytes: '1000m' is stored as '1', '1.5Gi' as
// '1536Mi', '0.5' as '500m', '0.0001' as '1m'. Desired objects carry this form, so comparing
// them with the live ones finds no difference where there is none, and a
// steady state writes nothing.

const QUANTITY = /^([0-9]+)(?:\.([0-9]+))?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;

const DECIMAL_EXPONENT: Record<string, number> = {
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const BINARY_POWER: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL_SUFFIX: Record<number, string> = {
  [-3]: 'm',
  0: '',
  3: 'k',
  6: 'M',
  9: 'G',
  12: 'T',
  15: 'P',
  18: 'E',
};
const BINARY_SUFFIX = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

const MILLIS_PER_UNIT = 1000n;

/** The value in thousandths, rounded up as the API server does. */
export function quantityMillis(quantity: string): bigint {
  const match = QUANTITY.exec(quantity);
  if (!match) throw new RangeError(`not a quantity: "${quantity}"`);
  const [, whole = '', fraction = '', suffix = ''] = match;
  const multiplier =
    suffix in BINARY_POWER
      ? 1024n ** BigInt(BINARY_POWER[suffix]!) * MILLIS_PER_UNIT
      : 10n ** BigInt(DECIMAL_EXPONENT[suffix]! + 3);
  // ResourceList defaulting rounds up to thousandths, so that asking for a
  // tiny amount never becomes asking for none.
  return ceilDiv(BigInt(whole + fraction) * multiplier, 10n ** BigInt(fraction.length));
}

/** Quantities from 8Ei up do not fit the API server's 64 bits: it clamps them. */
export const QUANTITY_LIMIT = '8Ei';

/**
 * The canonical spelling of a non-negative quantity without an exponent
 * (the only kind our schemas accept). Throws on anything else.
 */
export function canonicalQuantity(quantity: string): string {
  const millis = quantityMillis(quantity);
  const binary = (QUANTITY.exec(quantity)?.[3] ?? '') in BINARY_POWER;
  if (millis === 0n) return '0';
  if (binary && millis % MILLIS_PER_UNIT === 0n && millis / MILLIS_PER_UNIT >= 1024n) {
    return binaryForm(millis / MILLIS_PER_UNIT);
  }
  return decimalForm(millis);
}

function ceilDiv(numerator: bigint, denominator: bigint): bigint {
  return (numerator + denominator - 1n) / denominator;
}

function binaryForm(units: bigint): string {
  let amount = units;
  let power = 0;
  while (amount % 1024n === 0n && power < BINARY_SUFFIX.length - 1) {
    amount /= 1024n;
    power += 1;
  }
  return `${amount}${BINARY_SUFFIX[power]}`;
}

function decimalForm(millis: bigint): string {
  let amount = millis;
  let exponent = -3;
  while (amount % 10n === 0n) {
    amount /= 10n;
    exponent += 1;
  }
  // Suffixes come in steps of a thousand: lower the exponent to one of them.
  const extra = ((exponent % 3) + 3) % 3;
  amount *= 10n ** BigInt(extra);
  exponent -= extra;
  const suffix = DECIMAL_SUFFIX[exponent];
  return suffix === undefined ? `${amount}e${exponent}` : `${amount}${suffix}`;
}

// Any quantity the API server accepts ("500m", "1Gi", "1e3", negative too) as an exact
// value, for comparing a live object with the desired one: floating point could
// call two different quantities equal, so the value is a reduced fraction of BigInts.

// The same suffixes as above, plus the sub-milli ones a live object may carry.
const EXACT_DECIMAL_SUFFIXES: Record<string, number> = { n: -9, u: -6, ...DECIMAL_EXPONENT };
const ANY_QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;
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
export function exactQuantityValue(text: string): string | undefined {
  const match = ANY_QUANTITY.exec(text);
  if (!match) return undefined;
  const [, sign = '', number = '', suffix = ''] = match;
  const [whole = '', fraction = ''] = number.split('.');
  let numerator = BigInt(`${whole || '0'}${fraction}`) * (sign === '-' ? -1n : 1n);
  let denominator = 10n ** BigInt(fraction.length);
  let decimalExponent: number;
  if (suffix in BINARY_POWER) {
    numerator *= 2n ** BigInt(10 * (BINARY_POWER[suffix] ?? 0));
    decimalExponent = 0;
  } else if (suffix in EXACT_DECIMAL_SUFFIXES) {
    decimalExponent = EXACT_DECIMAL_SUFFIXES[suffix] ?? 0;
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
