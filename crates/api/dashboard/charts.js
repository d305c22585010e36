// Hand-written SVG charts. Geometry uses numbers; every figure shown as
// text comes from the API's strings (format.js).

import { h, s } from './dom.js';
import { addDays, compact, daysBetween, geom, money } from './format.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
let uid = 0;

function monthEnd(ym) {
  const [y, m] = ym.split('-').map(Number);
  const d = new Date(Date.UTC(y, m, 0));
  return d.toISOString().slice(0, 10);
}

function monthStarts(from, to) {
  const out = [];
  let [y, m] = from.split('-').map(Number);
  for (let guard = 0; guard < 600; guard++) {
    const d = `${y}-${String(m).padStart(2, '0')}-01`;
    if (d > to) break;
    if (d >= from) out.push(d);
    m++;
    if (m > 12) { m = 1; y++; }
  }
  return out;
}

/**
 * Cumulative spend: monthly cumulative (direct + indirect) against the
 * straight-line plan and the award. `opts`: start, end, award, monthly,
 * asOf (the day the figures are as of), summary (text).
 */
export function spendChart({ start, end, award, monthly, asOf, summary }) {
  const id = `chart-${++uid}`;
  const W = 720, H = 320, L = 64, R = 16, T = 18, B = 40;
  const pw = W - L - R, ph = H - T - B;
  const total = Math.max(1, daysBetween(start, end));
  let cum = 0;
  const series = (monthly || []).map((m) => {
    const value = m.cumulative ? geom(m.cumulative) : (cum += geom(m.spent) + geom(m.indirect));
    return { month: m.month, value };
  });
  const awardN = geom(award);
  const maxV = Math.max(awardN, ...series.map((p) => p.value), 1) * 1.05;
  const x = (d) => L + (Math.min(Math.max(daysBetween(start, d), 0), total) / total) * pw;
  const y = (v) => T + ph - (v / maxV) * ph;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart spend-chart', role: 'img', 'aria-labelledby': `${id}-t ${id}-d`, preserveAspectRatio: 'xMidYMid meet' },
    s('title', { id: `${id}-t` }, 'Cumulative spend against plan and award'),
    s('desc', { id: `${id}-d` }, summary || ''));
  // Grid and y axis.
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const v = (maxV / ticks) * i;
    const yy = y(v);
    svg.appendChild(s('line', { x1: L, x2: W - R, y1: yy, y2: yy, class: 'grid' }));
    svg.appendChild(s('text', { x: L - 8, y: yy + 4, 'text-anchor': 'end', class: 'tick' }, compact(v)));
  }
  // x axis: months.
  const starts = monthStarts(start.slice(0, 7) + '-01', end);
  const step = starts.length > 24 ? 3 : starts.length > 14 ? 2 : 1;
  starts.forEach((d, i) => {
    if (d < start) return;
    const xx = x(d);
    svg.appendChild(s('line', { x1: xx, x2: xx, y1: T + ph, y2: T + ph + 5, class: 'axis' }));
    if (i % step === 0) {
      const [yy, mm] = d.split('-');
      const label = mm === '01' || i === 0 ? `${MONTHS[Number(mm) - 1]} ${yy}` : MONTHS[Number(mm) - 1];
      svg.appendChild(s('text', { x: xx + 2, y: T + ph + 18, class: 'tick' }, label));
    }
  });
  svg.appendChild(s('line', { x1: L, x2: W - R, y1: T + ph, y2: T + ph, class: 'axis' }));
  svg.appendChild(s('line', { x1: L, x2: L, y1: T, y2: T + ph, class: 'axis' }));
  svg.appendChild(s('text', { x: L, y: H - 4, class: 'axis-label' }, `${start} to ${end}`));
  // Award line.
  svg.appendChild(s('line', { x1: L, x2: W - R, y1: y(awardN), y2: y(awardN), class: 'award-line' }));
  svg.appendChild(s('text', { x: W - R - 4, y: y(awardN) - 6, 'text-anchor': 'end', class: 'series-label award-label' }, `Award ${money(award)}`));
  // Plan.
  svg.appendChild(s('line', { x1: x(start), y1: y(0), x2: x(end), y2: y(awardN), class: 'plan-line' }));
  // Actual, ramping within each month to its cumulative figure.
  const pts = [[x(start), y(0)]];
  let prev = 0;
  for (const p of series) {
    const ms = p.month + '-01';
    let me = monthEnd(p.month);
    if (asOf && me > asOf) me = asOf;
    pts.push([x(ms < start ? start : ms), y(prev)]);
    pts.push([x(me), y(p.value)]);
    prev = p.value;
  }
  const until = asOf && asOf < end ? asOf : end;
  if (until >= start) pts.push([x(until), y(prev)]);
  svg.appendChild(s('polyline', { points: pts.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(' '), class: 'actual-line' }));
  for (const p of series) {
    let me = monthEnd(p.month);
    if (asOf && me > asOf) me = asOf;
    svg.appendChild(s('circle', { cx: x(me), cy: y(p.value), r: 3, class: 'actual-dot' }));
  }
  if (asOf && asOf >= start && asOf <= end) {
    svg.appendChild(s('line', { x1: x(asOf), x2: x(asOf), y1: T, y2: T + ph, class: 'marker-line' }));
    const right = x(asOf) > L + pw * 0.8;
    svg.appendChild(s('text', { x: x(asOf) + (right ? -4 : 4), y: T + ph - 8, 'text-anchor': right ? 'end' : 'start', class: 'tick' }, asOf));
  }
  const legend = h('ul', { class: 'legend', 'aria-hidden': 'true' },
    h('li', h('span', { class: 'key key-actual' }), 'Spent (direct + indirect), cumulative'),
    h('li', h('span', { class: 'key key-plan' }), 'Straight-line plan'),
    h('li', h('span', { class: 'key key-award' }), 'Award'));
  return h('figure', { class: 'chart-figure' }, h('div', { class: 'chart-box' }, svg), legend, h('figcaption', { class: 'chart-summary' }, summary || ''));
}

/**
 * Budget against actual by group: a track of the current budget with spent
 * and committed stacked on it.
 */
export function budgetBars(groups, label) {
  const rowH = 30, L = 76, R = 12, W = 640, T = 6;
  const H = T + groups.length * rowH + 8;
  const max = Math.max(1, ...groups.map((g) => Math.max(geom(g.current), geom(g.spent) + geom(g.committed))));
  const sx = (v) => (v / max) * (W - L - R);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart bars', role: 'img', 'aria-label': label });
  groups.forEach((g, i) => {
    const y0 = T + i * rowH;
    const cur = geom(g.current), sp = geom(g.spent), cm = geom(g.committed);
    const row = s('g', { 'data-key': g.key });
    row.appendChild(s('title', `${g.key}: current ${money(g.current)}, spent ${money(g.spent)}, committed ${money(g.committed)}`));
    row.appendChild(s('text', { x: L - 8, y: y0 + 17, 'text-anchor': 'end', class: 'tick strong' }, g.key));
    row.appendChild(s('rect', { x: L, y: y0 + 4, width: Math.max(sx(cur), 1), height: 18, class: 'bar-current' }));
    row.appendChild(s('rect', { x: L, y: y0 + 8, width: sx(Math.min(sp, cur)), height: 10, class: 'bar-spent' }));
    if (sp > cur) row.appendChild(s('rect', { x: L + sx(cur), y: y0 + 8, width: sx(sp - cur), height: 10, class: 'bar-over' }));
    if (cm > 0) row.appendChild(s('rect', { x: L + sx(sp), y: y0 + 8, width: sx(cm), height: 10, class: 'bar-committed' }));
    svg.appendChild(row);
  });
  const legend = h('ul', { class: 'legend', 'aria-hidden': 'true' },
    h('li', h('span', { class: 'key key-current' }), 'Current budget'),
    h('li', h('span', { class: 'key key-spent' }), 'Spent'),
    h('li', h('span', { class: 'key key-committed' }), 'Committed'),
    h('li', h('span', { class: 'key key-over' }), 'Over budget'));
  return h('div', { class: 'chart-box' }, svg, legend);
}

/**
 * Gantt of a timeline view: reporting periods as bands, one row per
 * milestone with baseline and current due, the slip between them, the
 * grant's end and effective end.
 */
export function gantt(tl) {
  const id = `gantt-${++uid}`;
  const ms = tl.milestones || [];
  const periods = tl.reporting_periods || [];
  const dates = [tl.start, tl.end, tl.effective_end];
  for (const m of ms) dates.push(m.baseline_due, m.current_due, m.achieved_on);
  for (const p of periods) dates.push(p.start, p.end, p.report_due);
  for (const a of tl.amendments || []) dates.push(a.proposed_end);
  // The reference day widens the chart only when it is near the grant's
  // dates: years later it would squeeze the grant into a corner (the
  // caption names it instead).
  const latest = dates.filter(Boolean).sort().pop() || tl.end;
  if (tl.today && tl.today <= addDays(latest, 90)) dates.push(tl.today);
  const valid = dates.filter(Boolean).sort();
  let from = tl.start, to = valid[valid.length - 1] || tl.end;
  if (valid[0] < from) from = valid[0];
  to = addDays(to, 14);
  const span = Math.max(1, daysBetween(from, to));
  const W = 1000, L = 220, R = 230, T = 34, rowH = 26, bandH = 30;
  const H = T + bandH + ms.length * rowH + 40;
  const x = (d) => L + (daysBetween(from, d) / span) * (W - L - R);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart gantt', role: 'img', 'aria-labelledby': `${id}-t` },
    s('title', { id: `${id}-t` }, `Timeline of ${tl.grant}: ${ms.length} milestones, ${periods.length} reporting periods, from ${tl.start} to ${tl.effective_end}. The table below lists the same.`));
  // Month grid.
  const starts = monthStarts(from.slice(0, 7) + '-01', to);
  const step = starts.length > 24 ? 3 : 1;
  starts.forEach((d, i) => {
    if (d < from) return;
    const xx = x(d);
    svg.appendChild(s('line', { x1: xx, x2: xx, y1: T - 6, y2: H - 10, class: 'grid' }));
    if (i % step === 0) {
      const [yy, mm] = d.split('-');
      svg.appendChild(s('text', { x: xx + 2, y: T - 12, class: 'tick' }, mm === '01' || i === 0 ? `${MONTHS[Number(mm) - 1]} ${yy.slice(2)}` : MONTHS[Number(mm) - 1]));
    }
  });
  // Reporting periods.
  periods.forEach((p, i) => {
    const g = s('g', { class: p.closed ? 'period closed' : 'period', 'data-period': p.id });
    g.appendChild(s('title', `Reporting period ${p.id}: ${p.start} to ${p.end}, report due ${p.report_due}${p.closed ? ', closed' : ''}`));
    g.appendChild(s('rect', { x: x(p.start), y: T, width: Math.max(2, x(addDays(p.end, 1)) - x(p.start)), height: bandH - 8, class: i % 2 ? 'band band-alt' : 'band' }));
    g.appendChild(s('text', { x: x(p.start) + 4, y: T + 15, class: 'tick strong' }, `${p.id}${p.closed ? ' (closed)' : ''}`));
    svg.appendChild(g);
  });
  // Report due marks over every band.
  for (const p of periods) {
    svg.appendChild(s('path', { d: `M${x(p.report_due)},${T + bandH - 8} l-5,-8 h10 z`, class: 'report-due' }, s('title', `Report for ${p.id} due ${p.report_due}`)));
  }
  svg.appendChild(s('text', { x: 8, y: T + 15, class: 'tick strong' }, 'Reporting periods'));
  // Milestones.
  ms.forEach((m, i) => {
    const y0 = T + bandH + i * rowH;
    const cy = y0 + rowH / 2;
    const g = s('g', { class: `ms ms-${m.status}`, 'data-milestone': m.id });
    g.appendChild(s('title', `${m.id} ${m.title}: baseline ${m.baseline_due}, due ${m.current_due}${m.achieved_on ? `, achieved ${m.achieved_on}` : ''}, ${m.status.replace('_', ' ')}, slip ${m.slip_days} days, ${m.reschedules} reschedules${m.beyond_end ? `, beyond the end (${m.amendment || 'no amendment'})` : ''}`));
    if (i % 2) g.appendChild(s('rect', { x: 0, y: y0, width: W, height: rowH, class: 'row-alt' }));
    const title = `${m.id} ${m.title}`;
    g.appendChild(s('text', { x: 8, y: cy + 4, class: 'tick' }, title.length > 34 ? title.slice(0, 33) + '…' : title));
    const endDate = m.achieved_on || m.current_due;
    if (endDate !== m.baseline_due) {
      const a = x(m.baseline_due), b = x(endDate);
      g.appendChild(s('rect', { x: Math.min(a, b), y: cy - 4, width: Math.max(2, Math.abs(b - a)), height: 8, class: m.slip_days > 0 ? 'slip late' : 'slip early' }));
    }
    g.appendChild(s('path', { d: `M${x(m.baseline_due)},${cy - 6} l6,6 l-6,6 l-6,-6 z`, class: 'baseline-mark' }));
    g.appendChild(s('circle', { cx: x(m.current_due), cy, r: 5, class: 'current-mark' }));
    if (m.achieved_on) g.appendChild(s('path', { d: `M${x(m.achieved_on) - 5},${cy} l4,4 l7,-8`, class: 'achieved-mark' }));
    let note = `${m.status.replace('_', ' ')}`;
    if (m.slip_days) note += ` ${m.slip_days > 0 ? '+' : ''}${m.slip_days}d`;
    if (m.reschedules) note += ` ↻${m.reschedules}`;
    if (m.beyond_end) {
      note += ' beyond end';
      g.appendChild(s('path', { d: `M${x(m.current_due) + 7},${cy - 9} v12 M${x(m.current_due) + 7},${cy - 9} l8,3 l-8,3`, class: 'beyond-mark' }));
      if (m.amendment) g.appendChild(s('text', { x: x(m.current_due) + 18, y: cy + 4, class: 'tick warn' }, m.amendment));
    }
    g.appendChild(s('text', { x: W - R + 8, y: cy + 4, class: m.beyond_end || m.status === 'overdue' ? 'tick warn' : 'tick' }, note));
    svg.appendChild(g);
  });
  // Ends and today.
  const vline = (d, cls, label, dy) => {
    svg.appendChild(s('line', { x1: x(d), x2: x(d), y1: T - 4, y2: H - 10, class: cls }));
    svg.appendChild(s('text', { x: x(d) + 3, y: H - 2 - dy, class: 'tick' }, label));
  };
  for (const a of tl.amendments || []) {
    if (a.status === 'rejected' || !a.proposed_end || a.proposed_end === tl.effective_end) continue;
    vline(addDays(a.proposed_end, 1), 'amendment-line', `${a.id} ${a.status} ${a.proposed_end}`, 24);
  }
  vline(addDays(tl.end, 1), 'end-line', `end ${tl.end}`, 0);
  if (tl.effective_end !== tl.end) vline(addDays(tl.effective_end, 1), 'effective-end-line', `effective end ${tl.effective_end}`, 0);
  if (tl.today >= from && tl.today <= to) vline(tl.today, 'today-line', `${tl.today}`, 12);
  const legend = h('ul', { class: 'legend', 'aria-hidden': 'true' },
    h('li', h('span', { class: 'key key-baseline' }), 'Baseline due'),
    h('li', h('span', { class: 'key key-current-due' }), 'Current due'),
    h('li', h('span', { class: 'key key-slip' }), 'Slip'),
    h('li', h('span', { class: 'key key-band' }), 'Reporting period (▼ report due)'),
    h('li', h('span', { class: 'key key-end' }), 'Grant end'),
    h('li', h('span', { class: 'key key-amendment' }), 'Extension asked for'),
    h('li', h('span', { class: 'key key-beyond' }, '⚑'), 'Due beyond the end'),
    h('li', h('span', { class: 'key key-today' }), 'Reference day'));
  return h('figure', { class: 'chart-figure' }, h('div', { class: 'chart-box scroll-x' }, svg), legend);
}

