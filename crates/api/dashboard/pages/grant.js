// The grant page: figures, cumulative spend, budget against actual, the
// lines with drill-down, what is due, and (for writers) the write forms.

import { api, can, grantHistory, query, seg } from '../api.js';
import { budgetBars, spendChart } from '../charts.js';
import { empty, h, randomPart, table, tableWrap } from '../dom.js';
import { addDays, burn, daysBetween, isNegative, money, negate, pct, ratePct, raw, todayUtc } from '../format.js';
import { explainGrant, explainLine } from '../explain.js';
import { firstSegment, writeForm } from '../forms.js';
import { grantPath, link } from '../route.js';
import { moneyCell, numCell, statePill, viewQuery, wrap } from './common.js';

export function create(ctx) {
  const grant = ctx.route.grant;
  const params = ctx.params;
  const writer = can.write();
  const explainer = can.explain();
  let root = null;
  const parts = {};
  let data = null;
  let forms = null;
  const approveForms = new Map();

  function currency() {
    return (data && data.budget.currency) || (data && data.budget.award && data.budget.award.currency) || '';
  }

  function defaultDate() {
    if (params.as_of) return params.as_of;
    const t = todayUtc();
    const end = data && (data.budget.effective_end || data.timeline.effective_end);
    const start = data && (data.budget.start || data.timeline.start);
    if (end && t > end) return end;
    if (start && t < start) return start;
    return t;
  }

  function lineOptions() {
    return ((data && data.budget.lines) || []).map((l) => ({ value: l.line, label: `${l.line} (available ${money(l.available)})` }));
  }

  const done = (answer) => ctx.refresh(answer && answer.position);

  function buildForms() {
    const money2 = (values) => ({ amount: values.amount, currency: currency() });
    const opt = (v) => (v === '' ? undefined : v);
    const base = `/api/v1/grants/${seg(grant)}`;
    const expenditure = writeForm({
      id: 'form-expenditure',
      title: 'Record an expenditure',
      submit: 'Record expenditure',
      fields: [
        { name: 'id', label: 'Expenditure id', required: true, initial: () => `E-${randomPart()}` },
        { name: 'line', label: 'Budget line', type: 'select', required: true, options: lineOptions },
        { name: 'amount', label: 'Amount', required: true, inputmode: 'decimal', placeholder: '0.00', get suffix() { return currency(); }, hint: 'Decimal with a point, e.g. 1250.00' },
        { name: 'incurred_on', label: 'Incurred on', type: 'date', required: true, initial: defaultDate },
        { name: 'supplier', label: 'Supplier', required: true },
        { name: 'invoice', label: 'Invoice number', required: true },
        { name: 'commitment', label: 'Pays commitment', datalist: () => (data && data.commitments) || [] },
        { name: 'reason', label: 'Reason', type: 'textarea' },
      ],
      pointer: firstSegment(['id', 'line', 'amount', 'incurred_on', 'supplier', 'invoice', 'commitment', 'reason'], { '/conversion*': 'amount', '/effective_date': 'incurred_on' }),
      request: (v) => ({
        path: `${base}/expenditures`,
        body: { id: v.id, line: v.line, amount: money2(v), incurred_on: v.incurred_on, supplier: v.supplier, invoice: v.invoice, commitment: opt(v.commitment), reason: opt(v.reason) },
      }),
      onSuccess: done,
    });
    const commitment = writeForm({
      id: 'form-commitment',
      title: 'Raise a commitment',
      submit: 'Raise commitment',
      fields: [
        { name: 'id', label: 'Commitment id', required: true, initial: () => `PO-${randomPart()}` },
        { name: 'line', label: 'Budget line', type: 'select', required: true, options: lineOptions },
        { name: 'amount', label: 'Amount', required: true, inputmode: 'decimal', placeholder: '0.00', get suffix() { return currency(); } },
        { name: 'supplier', label: 'Supplier', required: true },
        { name: 'reference', label: 'Purchase order reference', required: true },
        { name: 'effective_date', label: 'Raised on', type: 'date', hint: 'Default: today' },
        { name: 'reason', label: 'Reason', type: 'textarea' },
      ],
      pointer: firstSegment(['id', 'line', 'amount', 'supplier', 'reference', 'effective_date', 'reason'], { '/conversion*': 'amount' }),
      request: (v) => ({
        path: `${base}/commitments`,
        body: { id: v.id, line: v.line, amount: money2(v), supplier: v.supplier, reference: v.reference, effective_date: opt(v.effective_date), reason: opt(v.reason) },
      }),
      onSuccess: done,
    });
    const milestone = writeForm({
      id: 'form-milestone-achieve',
      title: 'Mark a milestone achieved',
      submit: 'Mark achieved',
      fields: [
        { name: 'milestone', label: 'Milestone', type: 'select', required: true, emptyLabel: 'No open milestone', options: () => ((data && data.timeline.milestones) || []).filter((m) => m.status !== 'achieved' && m.status !== 'cancelled' && !m.achieved_on).map((m) => ({ value: m.id, label: `${m.id} ${m.title} (due ${m.current_due})` })) },
        { name: 'achieved_on', label: 'Achieved on', type: 'date', required: true, initial: defaultDate },
        { name: 'evidence', label: 'Evidence', hint: 'Where the proof is: a link or a document reference' },
      ],
      pointer: firstSegment(['milestone', 'achieved_on', 'evidence'], { '/milestone_id': 'milestone', '/id': 'milestone', '/effective_date': 'achieved_on' }),
      request: (v) => {
        if (!v.milestone) throw new Error('Choose a milestone.');
        return { path: `${base}/milestones/${seg(v.milestone)}/achieve`, body: { achieved_on: v.achieved_on, evidence: opt(v.evidence) } };
      },
      onSuccess: done,
    });
    const reallocation = writeForm({
      id: 'form-reallocation',
      title: 'Request a reallocation',
      intro: 'Moves an amount from one line to another. Another person approves it.',
      submit: 'Request reallocation',
      fields: [
        { name: 'id', label: 'Reallocation id', required: true, initial: () => `R-${randomPart()}` },
        { name: 'from', label: 'From line', type: 'select', required: true, options: lineOptions },
        { name: 'to', label: 'To line', type: 'select', required: true, options: lineOptions, initial: (inputs) => { const l = lineOptions().find((o) => o.value !== inputs.from.value); return l ? l.value : ''; } },
        { name: 'amount', label: 'Amount', required: true, inputmode: 'decimal', placeholder: '0.00', get suffix() { return currency(); } },
        { name: 'reason', label: 'Reason', type: 'textarea' },
      ],
      pointer: firstSegment(['id', 'from', 'to', 'amount', 'reason'], { '/deltas/0/line': 'from', '/deltas/1/line': 'to', '/deltas*': 'amount' }),
      request: (v) => ({
        path: `${base}/reallocations`,
        body: { id: v.id, deltas: [{ line: v.from, amount: negate(v.amount) }, { line: v.to, amount: v.amount }], reason: opt(v.reason) },
      }),
      onSuccess: done,
    });
    return { expenditure, commitment, milestone, reallocation };
  }

  function approveForm(r) {
    let f = approveForms.get(r.id);
    if (f) return f;
    f = writeForm({
      id: `approve-${r.id}`,
      title: `Approve ${r.id}`,
      submit: 'Approve',
      fields: [{ name: 'reason', label: `Reason for approving ${r.id}` }],
      pointer: firstSegment(['reason']),
      request: (v) => ({ path: `/api/v1/grants/${seg(grant)}/reallocations/${seg(r.id)}/approval`, body: v.reason ? { reason: v.reason } : {} }),
      onSuccess: done,
    });
    f.form.classList.add('approve-form');
    f.form.dataset.reallocation = r.id;
    approveForms.set(r.id, f);
    return f;
  }

  function skeleton() {
    root = h('div', { class: 'page page-grant', 'data-grant': grant });
    for (const name of ['header', 'tiles', 'spend', 'bars', 'lines', 'schedule']) {
      parts[name] = h('div', { class: `part part-${name}` });
      root.appendChild(parts[name]);
    }
    if (writer) {
      forms = buildForms();
      parts.pending = h('div', { class: 'pending-list' });
      const grid = h('div', { class: 'form-grid' }, forms.expenditure.form, forms.commitment.form, forms.milestone.form, forms.reallocation.form);
      parts.writes = h('section', { class: 'card writes', id: 'writes', 'aria-labelledby': 'writes-title' },
        h('h2', { id: 'writes-title' }, 'Record'),
        h('p', { class: 'hint' }, 'Each write records a new fact now, in your name, whatever date the view above is set to.'),
        grid,
        h('h3', { id: 'pending-title' }, 'Reallocations awaiting approval'),
        parts.pending);
      root.appendChild(parts.writes);
    }
  }

  return {
    name: 'grant',
    title: grant,
    async load({ minPosition, signal }) {
      const q = query(viewQuery(params, { min_position: minPosition || null }));
      const [budget, timeline, history] = await Promise.all([
        api(`/api/v1/grants/${seg(grant)}/budget${q}`, { signal }),
        api(`/api/v1/grants/${seg(grant)}/timeline${q}`, { signal }),
        writer ? grantHistory(grant, signal).catch(() => null) : Promise.resolve(null),
      ]);
      return { budget, timeline, ...fromHistory(history) };
    },
    render(d) {
      data = d;
      if (!root) skeleton();
      const b = d.budget, t = d.timeline;
      parts.header.replaceChildren(header(grant, b, t, params));
      parts.tiles.replaceChildren(tiles(grant, b, t, params, explainer));
      parts.spend.replaceChildren(spendSection(b, t, params));
      parts.bars.replaceChildren(barsSection(b));
      parts.lines.replaceChildren(linesSection(grant, b, params, explainer));
      parts.schedule.replaceChildren(scheduleSection(t));
      if (writer) {
        for (const f of Object.values(forms)) f.update();
        for (const f of [forms.expenditure, forms.commitment, forms.reallocation]) {
          const affix = f.form.querySelector('.field-amount .affix');
          if (affix) affix.textContent = currency();
          const label = f.form.querySelector('.field-amount label');
          if (label) label.firstChild.textContent = `Amount (${currency()})`;
        }
        const pending = d.pending || [];
        for (const id of [...approveForms.keys()]) if (!pending.some((r) => r.id === id)) approveForms.delete(id);
        parts.pending.replaceChildren(...(pending.length ? pending.map((r) => pendingItem(r, approveForm(r).form)) : [empty(d.historyError ? 'The pending reallocations could not be read.' : 'None.')]));
      }
      return { node: root, position: Math.max(Number(b.position) || 0, Number(t.position) || 0) };
    },
    streams(d, position) {
      return [{ url: `/api/v1/grants/${seg(grant)}/events/stream`, after: position }];
    },
  };
}

/** Pending reallocations and commitment ids from the grant's history. */
function fromHistory(events) {
  if (!events) return { pending: [], commitments: [], historyError: true };
  const requested = new Map();
  const commitments = [];
  for (const e of events) {
    const d = e.data || {};
    if (e.type === 'ReallocationRequested') requested.set(d.reallocation_id, { id: d.reallocation_id, deltas: d.deltas || [], actor: e.actor, reason: e.reason, recorded_at: e.recorded_at, effective_date: e.effective_date, position: e.position });
    else if (e.type === 'ReallocationApproved' || e.type === 'ReallocationRejected') requested.delete(d.reallocation_id);
    else if (e.type === 'CommitmentRaised') commitments.push(d.commitment_id);
    else if (e.type === 'CommitmentClosed') {
      const i = commitments.indexOf(d.commitment_id);
      if (i >= 0) commitments.splice(i, 1);
    }
  }
  return { pending: [...requested.values()], commitments: commitments.filter(Boolean) };
}

function pendingItem(r, form) {
  const deltas = r.deltas.map((x) => `${x.line} ${isNegative(x.amount && x.amount.amount) ? '' : '+'}${money(x.amount)}`).join(', ');
  return h('article', { class: 'pending', 'data-reallocation': r.id },
    h('h4', r.id),
    h('p', deltas),
    h('p', { class: 'muted' }, `Requested by ${r.actor || 'unknown'} on ${r.effective_date || '—'}${r.reason ? `: ${r.reason}` : ''} (position ${r.position})`),
    form);
}

function header(grant, b, t, params) {
  const start = b.start || t.start;
  const end = b.effective_end || t.effective_end;
  return h('div', { class: 'page-header' },
    h('h1', b.acronym || b.title ? [b.acronym ? `${b.acronym} ` : '', h('span', { class: 'muted-id' }, `(${grant})`)] : `Grant ${grant}`),
    b.title ? h('p', { class: 'grant-title' }, b.title) : null,
    h('p', { class: 'subtitle' },
      `${b.currency || ''} · ${start} to ${end}`,
      t.end && end !== t.end ? ` (extended from ${t.end})` : '',
      ` · figures ${b.as_of ? `as of ${b.as_of}` : 'for every fact'} · log position ${b.position}`),
    h('nav', { class: 'subnav', 'aria-label': 'Grant pages' },
      h('a', { href: link(grantPath(grant, 'timeline'), params) }, 'Timeline'),
      can.history() ? h('a', { href: link(grantPath(grant, 'history'), params) }, 'History and audit') : null));
}

function tile(name, label, value, rawValue, sub, extra) {
  return h('div', { class: `tile tile-${name}`, 'data-figure': name, 'data-value': rawValue ?? '' },
    h('span', { class: 'tile-label' }, label),
    h('span', { class: 'tile-value' }, value),
    sub ? h('span', { class: 'tile-sub' }, sub) : null,
    extra || null);
}

function meter(value, tone) {
  const bar = h('span', { class: `meter-fill ${tone || ''}` });
  bar.style.width = `${Math.max(0, Math.min(100, Number(value) || 0))}%`;
  return h('span', { class: 'meter', 'aria-hidden': 'true' }, bar);
}

function tiles(grant, b, t, params, explainer) {
  const ex = (figure, label) => (explainer
    ? h('button', { type: 'button', class: 'link-button tile-explain', 'data-explain': figure, 'data-focus-key': `tile-${figure}`, onclick: (ev) => explainGrant(grant, figure, params, ev.currentTarget) }, label)
    : null);
  const bi = Number(b.burn_index);
  const pace = !Number.isFinite(bi) ? '' : bi > 1.1 ? 'Spending faster than time' : bi < 0.9 ? 'Spending slower than time' : 'Spending in step with time';
  const fc = b.forecast_at_completion;
  const fv = b.forecast_variance;
  const over = fv && isNegative(fv.amount);
  const rate = b.indirect ? ratePct(b.indirect.rate) : '';
  return h('section', { class: 'tiles', 'aria-label': 'Key figures' },
    tile('award', 'Award', money(b.award), b.award && b.award.amount, `${b.start || t.start} to ${b.effective_end || t.effective_end}`),
    tile('allocated', 'Allocated to lines', money(b.allocated), b.allocated && b.allocated.amount, `Unallocated ${money(b.unallocated)}`, ex('current', 'Show events')),
    tile('committed', 'Committed', money(b.committed), b.committed && b.committed.amount, 'Open purchase orders', ex('committed', 'Show events')),
    tile('spent', 'Spent', money(b.spent), b.spent && b.spent.amount, `incl. indirect ${money(b.indirect && b.indirect.accrued)}`, ex('spent', 'Show events')),
    tile('indirect', 'Indirect costs accrued', money(b.indirect && b.indirect.accrued), b.indirect && b.indirect.accrued && b.indirect.accrued.amount, `${rate} of ${money(b.indirect && b.indirect.base)} eligible`),
    tile('available', 'Available', money(b.available), b.available && b.available.amount, 'Award − spent − committed'),
    tile('spent_pct', 'Share of award spent', pct(b.spent_pct), raw(b.spent_pct), `vs ${pct(b.time_elapsed_pct)} of time`, meter(b.spent_pct, 'fill-spent')),
    tile('time_elapsed_pct', 'Share of time elapsed', pct(b.time_elapsed_pct), raw(b.time_elapsed_pct), 'of the grant period', meter(b.time_elapsed_pct, 'fill-time')),
    tile('burn_index', 'Burn index', burn(b.burn_index), raw(b.burn_index), pace),
    tile('forecast', 'Forecast at completion', fc ? money(fc) : '—', fc ? fc.amount : '',
      fv ? h('span', { class: over ? 'warn-text' : null, 'data-variance': fv.amount }, `Variance ${money(fv)} (${over ? 'overrun' : 'within the award'})`) : 'Not available'));
}

function spendSection(b, t, params) {
  const start = b.start || t.start;
  const end = b.effective_end || t.effective_end;
  const asOf = params.as_of || (t.today && t.today < end ? t.today : end);
  const summary = `Spent ${money(b.spent)} of the ${money(b.award)} award (${pct(b.spent_pct)}) with ${pct(b.time_elapsed_pct)} of the period from ${start} to ${end} elapsed: burn index ${burn(b.burn_index)}.` +
    (b.forecast_at_completion ? ` Forecast at completion ${money(b.forecast_at_completion)}.` : '');
  const monthly = b.monthly || [];
  const rows = monthly.map((m) => [{ th: true, cell: m.month }, moneyCell(m.spent), moneyCell(m.indirect), moneyCell(m.cumulative)]);
  const details = h('details', { class: 'figures' }, h('summary', 'Monthly figures'),
    monthly.length
      ? tableWrap(table({ className: 'data compact', head: ['Month', { text: 'Direct', attrs: { class: 'num' } }, { text: 'Indirect', attrs: { class: 'num' } }, { text: 'Cumulative', attrs: { class: 'num' } }], rows }), 'Monthly figures')
      : empty('No spending recorded.'));
  return h('section', { class: 'card', 'aria-labelledby': 'spend-title' },
    h('h2', { id: 'spend-title' }, 'Cumulative spend'),
    spendChart({ start, end, award: b.award, monthly, asOf, summary }),
    details);
}

function groupTable(groups, keyLabel) {
  return table({
    className: 'data compact',
    head: [keyLabel, ...['Original', 'Current', 'Committed', 'Spent', 'Available'].map((x) => ({ text: x, attrs: { class: 'num' } }))],
    rows: groups.map((g) => [{ th: true, cell: g.key }, moneyCell(g.original), moneyCell(g.current), moneyCell(g.committed), moneyCell(g.spent), moneyCell(g.available)]),
    rowAttrs: (i) => ({ 'data-key': groups[i].key }),
  });
}

function barsSection(b) {
  const panel = (title, id, groups, keyLabel) => h('div', { class: 'bars-panel', 'aria-labelledby': id },
    h('h3', { id }, title),
    budgetBars(groups, `${title}: current budget, spent and committed per ${keyLabel.toLowerCase()}. The table below lists the figures.`),
    h('details', { class: 'figures' }, h('summary', 'Figures'), tableWrap(groupTable(groups, keyLabel), title)));
  return h('section', { class: 'card', 'aria-labelledby': 'bars-title' },
    h('h2', { id: 'bars-title' }, 'Budget against actual'),
    h('div', { class: 'two-col' },
      panel('By category', 'bars-category', b.by_category || [], 'Category'),
      panel('By workstream', 'bars-workstream', b.by_workstream || [], 'Workstream')));
}

function flags(l) {
  const out = [];
  const p = Number(l.spent_pct);
  if (l.overspent) out.push(h('span', { class: 'flag flag-red', 'data-flag': 'overspent' }, 'overspent'));
  if (p >= 95) out.push(h('span', { class: 'flag flag-red', 'data-flag': '95' }, '>= 95 %'));
  else if (p >= 80) out.push(h('span', { class: 'flag flag-amber', 'data-flag': '80' }, '>= 80 %'));
  return out;
}

function linesSection(grant, b, params, explainer) {
  const lines = b.lines || [];
  const figureCell = (l, figure) => {
    const m = l[figure];
    if (!explainer) return moneyCell(m, { 'data-col': figure });
    const btn = h('button', { type: 'button', class: 'cell-button', 'data-line': l.line, 'data-figure': figure, 'data-value': m && m.amount, title: `Show the events behind ${l.line} ${figure}`, onclick: (ev) => explainLine(grant, l.line, figure, params, ev.currentTarget) }, money(m));
    return { cell: btn, attrs: { class: 'num', 'data-col': figure } };
  };
  const t = table({
    className: 'data lines-table',
    head: ['Line', 'Workstream', 'Category', ...['Original', 'Current', 'Committed', 'Spent', 'Available', '% spent'].map((x) => ({ text: x, attrs: { class: 'num' } })), 'Flags'],
    rows: lines.map((l) => [
      { th: true, cell: l.line },
      l.workstream,
      l.category,
      moneyCell(l.original, { 'data-col': 'original' }),
      figureCell(l, 'current'),
      figureCell(l, 'committed'),
      figureCell(l, 'spent'),
      moneyCell(l.available, { 'data-col': 'available', class: isNegative(l.available && l.available.amount) ? 'num warn-text' : 'num' }),
      numCell(pct(l.spent_pct), { 'data-col': 'spent_pct', 'data-value': raw(l.spent_pct) }),
      { cell: flags(l), attrs: { class: 'flags' } },
    ]),
    rowAttrs: (i) => ({ 'data-row-line': lines[i].line, class: lines[i].overspent ? 'row-over' : null }),
  });
  return h('section', { class: 'card', 'aria-labelledby': 'lines-title' },
    h('h2', { id: 'lines-title' }, 'Budget lines'),
    explainer ? h('p', { class: 'hint' }, 'Select a current, committed or spent figure to see the events behind it.') : null,
    lines.length ? tableWrap(t, 'Budget lines') : empty('No budget lines yet.'));
}

function scheduleSection(t) {
  const today = t.today;
  const horizon = addDays(today, 90);
  const ms = t.milestones || [];
  const overdue = ms.filter((m) => m.status === 'overdue');
  const upcoming = ms.filter((m) => m.status !== 'overdue' && m.status !== 'achieved' && m.status !== 'cancelled' && m.current_due >= today && m.current_due <= horizon);
  const msTable = (list, caption, late) => table({
    className: 'data compact',
    caption,
    head: ['Milestone', 'Title', 'Workstream', 'Due', late ? { text: 'Days late', attrs: { class: 'num' } } : { text: 'Days left', attrs: { class: 'num' } }, 'Status'],
    rows: list.map((m) => [{ th: true, cell: m.id }, wrap(m.title), m.workstream, m.current_due, numCell(String(Math.abs(daysBetween(today, m.current_due)))), { cell: statePill(m.status) }]),
    rowAttrs: (i) => ({ 'data-milestone': list[i].id }),
  });
  const periods = (t.reporting_periods || []).filter((p) => !p.closed && p.report_due <= horizon);
  const pTable = table({
    className: 'data compact',
    caption: 'Reports due (open periods, next 90 days or late)',
    head: ['Period', 'From', 'To', 'Report due', 'Status'],
    rows: periods.map((p) => [{ th: true, cell: p.id }, p.start, p.end, p.report_due, { cell: statePill(p.report_due < today ? 'overdue' : 'planned') }]),
    rowAttrs: (i) => ({ 'data-period': periods[i].id }),
  });
  return h('section', { class: 'card', 'aria-labelledby': 'schedule-title' },
    h('h2', { id: 'schedule-title' }, 'Due and overdue'),
    h('p', { class: 'subtitle' }, `Relative to ${today}; upcoming means due by ${horizon}.`),
    h('div', { class: 'schedule' },
      h('div', { class: 'schedule-block', 'data-list': 'overdue' }, overdue.length ? tableWrap(msTable(overdue, `Overdue milestones (${overdue.length})`, true), 'Overdue milestones') : h('p', { class: 'empty' }, 'No overdue milestones.')),
      h('div', { class: 'schedule-block', 'data-list': 'upcoming' }, upcoming.length ? tableWrap(msTable(upcoming, `Upcoming milestones (${upcoming.length})`, false), 'Upcoming milestones') : h('p', { class: 'empty' }, 'No milestones due in the next 90 days.')),
      h('div', { class: 'schedule-block', 'data-list': 'reports' }, periods.length ? tableWrap(pTable, 'Reports due') : h('p', { class: 'empty' }, 'No open reporting period has a report due in the next 90 days.'))));
}
