// Go duration strings ("30s", "1m30s", "500ms", "1h", "1.5h", "0"), as kube-proxy's flags and
// metav1.Duration fields accept them. Values are carried in milliseconds (fractions allowed).

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign
  'μs': 1e-3, // U+03BC greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const COMPONENT = /^(\d*)(?:\.(\d*))?([^\d.]+)/u;

/** Parses like Go's time.ParseDuration; throws Error with Go's wording on bad input. */
export function parseGoDuration(text: string): number {
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest[0] === '-') sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw new Error(`time: invalid duration "${text}"`);
  let totalMs = 0;
  while (rest !== '') {
    const m = COMPONENT.exec(rest);
    if (!m) {
      if (/^[\d.]+$/.test(rest)) throw new Error(`time: missing unit in duration "${text}"`);
      throw new Error(`time: invalid duration "${text}"`);
    }
    const [whole, intPart, fracPart, unit] = m;
    if (intPart === '' && (fracPart === undefined || fracPart === '')) {
      throw new Error(`time: invalid duration "${text}"`);
    }
    const unitMs = UNIT_MS[unit];
    if (unitMs === undefined) throw new Error(`time: unknown unit "${unit}" in duration "${text}"`);
    totalMs += Number(`${intPart || '0'}.${fracPart || '0'}`) * unitMs;
    rest = rest.slice(whole.length);
  }
  return sign * totalMs;
}

/** Formats like Go's Duration.String(): "30s", "1m30s", "15m0s", "24h0m0s", "500ms", "0s". */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  if (abs < 1000) {
    if (abs >= 1) return `${sign}${trimNumber(abs)}ms`;
    if (abs >= 1e-3) return `${sign}${trimNumber(abs * 1e3)}µs`;
    return `${sign}${trimNumber(abs * 1e6)}ns`;
  }
  const hours = Math.floor(abs / 3_600_000);
  const minutes = Math.floor((abs % 3_600_000) / 60_000);
  const seconds = (abs % 60_000) / 1000;
  let out = `${trimNumber(seconds)}s`;
  if (hours > 0 || minutes > 0) out = `${minutes}m${out}`;
  if (hours > 0) out = `${hours}h${out}`;
  return sign + out;
}

function trimNumber(n: number): string {
  // Up to nanosecond precision, without float noise or trailing zeros.
  return String(Number(n.toFixed(9)));
}
