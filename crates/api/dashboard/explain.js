// The drill-down dialog: the events behind a line's current, committed or
// spent figure (or every line's), with their signed amounts and the total.

import { api, describe, query, seg } from './api.js';
import { h, table, tableWrap } from './dom.js';
import { instant, money, sumMoney, typeLabel } from './format.js';

const FIGURE_TEXT = { current: 'Current budget', committed: 'Committed', spent: 'Spent' };
let invoker = null;

function dialog() {
  return document.getElementById('explain');
}

function body() {
  return document.getElementById('explain-body');
}

function setup() {
  const d = dialog();
  if (d.dataset.ready) return;
  d.dataset.ready = 'true';
  document.getElementById('explain-close').addEventListener('click', () => d.close());
  d.addEventListener('close', () => {
    body().replaceChildren();
    if (invoker && invoker.isConnected) invoker.focus();
    else if (invoker && invoker.key) {
      const again = document.querySelector(invoker.key);
      if (again) again.focus();
    }
    invoker = null;
  });
  // A click on the backdrop closes it too.
  d.addEventListener('click', (ev) => { if (ev.target === d) d.close(); });
}

function open(title, subtitle, trigger) {
  setup();
  const d = dialog();
  invoker = trigger || document.activeElement;
  if (invoker && invoker.dataset && invoker.dataset.line) invoker.key = `[data-line="${CSS.escape(invoker.dataset.line)}"][data-figure="${CSS.escape(invoker.dataset.figure)}"]`;
  document.getElementById('explain-title').textContent = title;
  document.getElementById('explain-subtitle').textContent = subtitle;
  body().replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  d.dataset.state = 'loading';
  if (!d.open) d.showModal();
  document.getElementById('explain-close').focus();
}

function eventsTable(events, total, withLine, figure) {
  const head = ['Position', ...(withLine ? ['Line'] : []), 'Type', 'Reference', 'Effective date', 'Recorded at', 'Actor', 'Reason', { text: 'Amount', attrs: { class: 'num' } }];
  const rows = events.map((c) => [
    { th: true, cell: String(c.position), attrs: { class: 'num' } },
    ...(withLine ? [c.line] : []),
    typeLabel(c.type),
    c.id || '',
    c.effective_date || '—',
    instant(c.recorded_at),
    c.actor || '',
    { cell: c.reason || '', attrs: { class: 'wrap' } },
    { cell: money(c.amount), attrs: { class: 'num', 'data-value': c.amount && c.amount.amount } },
  ]);
  const span = head.length - 1;
  const t = table({
    className: 'data explain-table',
    caption: `${FIGURE_TEXT[figure] || figure}: ${events.length} event${events.length === 1 ? '' : 's'}`,
    head,
    rows,
    rowAttrs: (i) => ({ 'data-position': String(events[i].position) }),
    foot: [[{ th: true, cell: 'Total', attrs: { colspan: String(span), scope: 'row' } }, { cell: money(total), attrs: { class: 'num explain-total', 'data-value': total && total.amount } }]],
  });
  return tableWrap(t, 'Events');
}

function subtitle(view) {
  const parts = [];
  parts.push(view.as_of ? `As of ${view.as_of}` : 'Every fact');
  if (view.known_at) parts.push(`known at ${view.known_at}`);
  if (view.position !== undefined) parts.push(`log position ${view.position}`);
  return parts.join(', ');
}

/** Opens the dialog for one line's figure. */
export async function explainLine(grant, line, figure, params, trigger) {
  open(`${line}: ${FIGURE_TEXT[figure] || figure}`, '', trigger);
  const d = dialog();
  try {
    const v = await api(`/api/v1/grants/${seg(grant)}/lines/${seg(line)}/explain${query({ as_of: params.as_of, known_at: params.known_at })}`);
    if (!d.open) return;
    const l = (v.lines || []).find((x) => x.line === line) || (v.lines || [])[0];
    const f = l && l[figure];
    document.getElementById('explain-subtitle').textContent = subtitle(v);
    body().replaceChildren(f ? eventsTable((f.events || []).map((c) => ({ ...c, line: l.line })), f.total, false, figure) : h('p', 'No events.'));
    d.dataset.position = String(v.position ?? '');
  } catch (e) {
    body().replaceChildren(h('p', { class: 'form-error', role: 'alert' }, describe(e)));
  }
  d.dataset.state = 'ready';
}

/** Opens the dialog for a grant-wide figure (every line, summed). */
export async function explainGrant(grant, figure, params, trigger) {
  open(`${grant}: ${FIGURE_TEXT[figure] || figure}, every line`, '', trigger);
  const d = dialog();
  try {
    const v = await api(`/api/v1/grants/${seg(grant)}/explain${query({ as_of: params.as_of, known_at: params.known_at })}`);
    if (!d.open) return;
    const events = [];
    const totals = [];
    for (const l of v.lines || []) {
      const f = l[figure];
      if (!f) continue;
      totals.push(f.total);
      for (const c of f.events || []) events.push({ ...c, line: l.line });
    }
    events.sort((a, b) => a.position - b.position);
    document.getElementById('explain-subtitle').textContent = subtitle(v);
    const total = sumMoney(totals);
    body().replaceChildren(eventsTable(events, total, true, figure));
    d.dataset.position = String(v.position ?? '');
  } catch (e) {
    body().replaceChildren(h('p', { class: 'form-error', role: 'alert' }, describe(e)));
  }
  d.dataset.state = 'ready';
}
