// Display formats. Money is formatted from the API's decimal string, never
// through a float: "EUR 53,297.85" everywhere.

const MINOR = { JPY: 0, KRW: 0, ISK: 0, CLP: 0, VND: 0, XOF: 0, XAF: 0, UGX: 0, PYG: 0, BHD: 3, KWD: 3, OMR: 3, JOD: 3, TND: 3, LYD: 3, IQD: 3 };
const NBSP = '\u00a0';

/** Groups the integer digits of a decimal string with commas. */
export function groupDigits(amount) {
  let text = String(amount ?? '').trim();
  let sign = '';
  if (text.startsWith('-') || text.startsWith('+')) {
    sign = text[0] === '-' ? '-' : '';
    text = text.slice(1);
  }
  const [int, frac] = text.split('.');
  const grouped = (int || '0').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return sign + grouped + (frac !== undefined ? '.' + frac : '');
}

/** Pads the fraction to the currency's minor digits (never cuts digits). */
function padMinor(amount, currency) {
  const digits = MINOR[currency] ?? 2;
  const text = String(amount ?? '0');
  if (!/^[+-]?\d+(\.\d+)?$/.test(text)) return text;
  const [int, frac = ''] = text.split('.');
  if (frac.length >= digits) return text;
  return int + (digits ? '.' + frac.padEnd(digits, '0') : '');
}

/** "EUR 53,297.85" from {amount: "53297.85", currency: "EUR"}. */
export function money(m) {
  if (!m || typeof m !== 'object') return '—';
  return `${m.currency}${NBSP}${groupDigits(padMinor(m.amount, m.currency))}`;
}

/** The amount alone, grouped ("53,297.85"). */
export function amountOnly(m) {
  if (!m || typeof m !== 'object') return '—';
  return groupDigits(padMinor(m.amount, m.currency));
}

/** Whether a decimal string is negative (and not zero). */
export function isNegative(amount) {
  return /^-/.test(String(amount)) && /[1-9]/.test(String(amount));
}

/** Whether a decimal string is zero. */
export function isZero(amount) {
  return !/[1-9]/.test(String(amount));
}

/** Percent with one decimal. */
export function pct(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  return `${Number(n).toFixed(1)}${NBSP}%`;
}

/** The burn index with three decimals. */
export function burn(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  return Number(n).toFixed(3);
}

/** A raw number as the API printed it, for data-value. */
export function raw(n) {
  return n === null || n === undefined ? '' : String(n);
}

/** "2022-10-15 08:01:02 UTC" from an RFC 3339 instant. */
export function instant(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace('Z', ' UTC');
}

/** A rate as a percent, exactly: "0.25" -> "25 %". */
export function ratePct(rate) {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(String(rate ?? ''));
  if (!m) return '';
  const frac = (m[2] || '').padEnd(2, '0');
  const int = String(BigInt(m[1] + frac.slice(0, 2)));
  const rest = frac.slice(2).replace(/0+$/, '');
  return `${int}${rest ? '.' + rest : ''}${NBSP}%`;
}

// Exact decimal arithmetic on strings (BigInt), for sums shown to the user.
function parseDec(text) {
  const m = /^([+-]?)(\d+)(?:\.(\d+))?$/.exec(String(text).trim());
  if (!m) return null;
  const frac = m[3] || '';
  return { neg: m[1] === '-', digits: BigInt(m[2] + frac), scale: frac.length };
}

/** a + b for decimal strings; null if either does not parse. */
export function addDec(a, b) {
  const x = parseDec(a);
  const y = parseDec(b);
  if (!x || !y) return null;
  const scale = Math.max(x.scale, y.scale);
  const xv = (x.neg ? -1n : 1n) * x.digits * 10n ** BigInt(scale - x.scale);
  const yv = (y.neg ? -1n : 1n) * y.digits * 10n ** BigInt(scale - y.scale);
  const sum = xv + yv;
  const neg = sum < 0n;
  let digits = (neg ? -sum : sum).toString().padStart(scale + 1, '0');
  const int = digits.slice(0, digits.length - scale);
  const frac = digits.slice(digits.length - scale);
  return (neg ? '-' : '') + int + (scale ? '.' + frac : '');
}

/** Money sum of a list (same currency); null when empty or mixed. */
export function sumMoney(list) {
  let total = null;
  for (const m of list) {
    if (!m) continue;
    if (!total) { total = { amount: m.amount, currency: m.currency }; continue; }
    if (m.currency !== total.currency) return null;
    total = { amount: addDec(total.amount, m.amount), currency: total.currency };
  }
  return total;
}

/** Negates a decimal string ("12.50" -> "-12.50"). */
export function negate(text) {
  const t = String(text).trim();
  if (t.startsWith('-')) return t.slice(1);
  if (t.startsWith('+')) return '-' + t.slice(1);
  return '-' + t;
}

/** A number for chart geometry only. */
export function geom(m) {
  const n = Number(m && typeof m === 'object' ? m.amount : m);
  return Number.isFinite(n) ? n : 0;
}

/** Compact axis label ("125k", "1.2M") for chart ticks only. */
export function compact(n) {
  const a = Math.abs(n);
  if (a >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(0)}`;
}

/** Human label of an event type: "ExpenditureRecorded" -> "Expenditure recorded". */
export function typeLabel(t) {
  if (!t) return '';
  const words = String(t).replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Days between two YYYY-MM-DD dates (b - a). */
export function daysBetween(a, b) {
  return Math.round((Date.parse(b + 'T00:00:00Z') - Date.parse(a + 'T00:00:00Z')) / 86400000);
}

/** A YYYY-MM-DD date plus n days. */
export function addDays(d, n) {
  const t = new Date(Date.parse(d + 'T00:00:00Z') + n * 86400000);
  return t.toISOString().slice(0, 10);
}

/** Today's date, UTC. */
export function todayUtc() {
  return new Date().toISOString().slice(0, 10);
}
