// History: the grant's events newest first, and the audit registers (line
// history with before and after figures, corrections, approvals).

import { api, ApiError, can, describe, grantHistory, seg } from '../api.js';
import { empty, h, table, tableWrap } from '../dom.js';
import { instant, isNegative, money, typeLabel } from '../format.js';
import { grantPath, link } from '../route.js';
import { moneyCell, statePill, wrap } from './common.js';

const PAGE = 100;

export function create(ctx) {
  const grant = ctx.route.grant;
  const params = ctx.params;
  let shown = PAGE;
  let typeFilter = '';
  return {
    name: 'history',
    title: `${grant} history`,
    async load({ signal }) {
      const audit = can.audit();
      const get = (path) => api(`/api/v1/grants/${seg(grant)}/audit/${path}`, { signal }).catch((e) => {
        if (e && e.name === 'AbortError') throw e;
        return { error: e };
      });
      const [events, lineHistory, corrections, approvals] = await Promise.all([
        grantHistory(grant, signal),
        audit ? get('line-history') : null,
        audit ? get('corrections') : null,
        audit ? get('approvals') : null,
      ]);
      return { events, lineHistory, corrections, approvals, audit };
    },
    render(d) {
      const all = d.events.slice().reverse();
      const position = d.events.reduce((m, e) => Math.max(m, Number(e.position) || 0), 0);
      // Every event is listed; those outside the view's date are marked.
      const outside = (e) => (params.known_at && Date.parse(e.recorded_at) > Date.parse(params.known_at)) || (params.as_of && e.effective_date && e.effective_date > params.as_of);
      const types = [...new Set(d.events.map((e) => e.type))].sort();
      const filtered = typeFilter ? all.filter((e) => e.type === typeFilter) : all;
      const node = h('div', { class: 'page page-history', 'data-grant': grant });
      const select = h('select', { id: 'history-type', onchange: (ev) => { typeFilter = ev.target.value; shown = PAGE; ctx.rerender(); } },
        h('option', { value: '' }, 'All types'), ...types.map((t) => h('option', { value: t, selected: t === typeFilter }, typeLabel(t))));
      const rows = filtered.slice(0, shown);
      const journal = table({
        className: 'data history-table',
        head: [{ text: 'Position', attrs: { class: 'num' } }, 'Type', 'Who', 'Recorded at', 'Effective date', 'Reason', 'Details'],
        rows: rows.map((e) => [
          { th: true, cell: String(e.position), attrs: { class: 'num' } },
          { cell: [typeLabel(e.type), outside(e) ? h('span', { class: 'muted block' }, '(after the view date)') : null] },
          e.actor || '',
          instant(e.recorded_at),
          e.effective_date || '—',
          wrap(e.reason),
          { cell: summary(e.data), attrs: { class: 'details' } },
        ]),
        rowAttrs: (i) => ({ 'data-position': String(rows[i].position), 'data-type': rows[i].type, class: outside(rows[i]) ? 'outside-view' : null }),
      });
      const hiddenCount = all.filter(outside).length;
      node.append(
        h('div', { class: 'page-header' },
          h('h1', `History of ${grant}`),
          h('p', { class: 'subtitle' }, `${d.events.length} events, newest first · last position ${position}`),
          h('nav', { class: 'subnav', 'aria-label': 'Grant pages' }, h('a', { href: link(grantPath(grant), params) }, 'Budget and figures'), h('a', { href: link(grantPath(grant, 'timeline'), params) }, 'Timeline'))),
        h('section', { class: 'card', 'aria-labelledby': 'journal-title' },
          h('h2', { id: 'journal-title' }, 'Journal'),
          hiddenCount ? h('p', { class: 'hint' }, `${hiddenCount} event${hiddenCount === 1 ? ' was' : 's were'} recorded after the "known at" instant or take effect after the "as of" date: they are marked and do not count in the views at that date.`) : null,
          h('div', { class: 'filters' }, h('label', { for: 'history-type' }, 'Event type'), select),
          rows.length ? tableWrap(journal, 'Journal') : empty('No events.'),
          filtered.length > shown
            ? h('p', h('button', { type: 'button', id: 'history-more', onclick: () => { shown += PAGE * 5; ctx.rerender(); } }, `Show older (${filtered.length - shown} more)`))
            : null),
        d.audit ? lineHistorySection(d.lineHistory) : h('section', { class: 'card' }, h('h2', 'Audit registers'), h('p', { class: 'muted' }, 'The line history, corrections register and approvals log are shown to auditors and admins.')),
        d.audit ? correctionsSection(d.corrections) : null,
        d.audit ? approvalsSection(d.approvals) : null);
      return { node, position };
    },
    streams(d, position) {
      return [{ url: `/api/v1/grants/${seg(grant)}/events/stream`, after: position }];
    },
  };
}

function isMoney(v) {
  return v && typeof v === 'object' && typeof v.amount === 'string' && typeof v.currency === 'string';
}

/** A short text of an event's payload. */
function summary(data) {
  if (!data || typeof data !== 'object') return '';
  const out = [];
  for (const [k, v] of Object.entries(data)) {
    if (v === null || v === undefined) continue;
    if (isMoney(v)) out.push(`${k.replace(/_/g, ' ')} ${money(v)}`);
    else if (Array.isArray(v)) {
      if (v.every((x) => x && x.line && isMoney(x.amount))) out.push(v.map((x) => `${x.line} ${isNegative(x.amount.amount) ? '' : '+'}${money(x.amount)}`).join(', '));
      else out.push(`${k.replace(/_/g, ' ')}: ${v.length}`);
    } else if (typeof v === 'object') {
      if (isMoney(v.amount)) out.push(`${k.replace(/_/g, ' ')} ${money(v.amount)}`);
    } else out.push(`${k.replace(/_/g, ' ')} ${v}`);
    if (out.length >= 6) break;
  }
  return out.join(' · ');
}

function failed(title, id, e) {
  const text = e instanceof ApiError && e.status === 403 ? 'Not available for your role.' : `Could not be read: ${describe(e)}`;
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), h('p', { class: 'muted' }, text));
}

function figures(f) {
  if (!f) return '';
  return `current ${money(f.current)} · committed ${money(f.committed)} · spent ${money(f.spent)} · available ${money(f.available)}`;
}

function lineHistorySection(lh) {
  const id = 'line-history-title';
  if (!lh || lh.error) return failed('Line history', id, lh && lh.error);
  return h('section', { class: 'card', 'aria-labelledby': id, 'data-section': 'line-history' },
    h('h2', { id }, 'Line history'),
    h('p', { class: 'hint' }, 'Every change of every budget line with the figures before and after.'),
    lh.length ? lh.map((l) => h('details', { class: 'line-history', 'data-line-history': l.line },
      h('summary', `${l.line} (${l.workstream}, ${l.category}): ${l.changes.length} change${l.changes.length === 1 ? '' : 's'}`),
      tableWrap(table({
        className: 'data compact',
        head: [{ text: 'Position', attrs: { class: 'num' } }, 'Type', 'What', 'Reference', 'Effective', 'Recorded at', 'Who', 'Reason', { text: 'Amount', attrs: { class: 'num' } }, 'Before', 'After'],
        rows: l.changes.map((c) => [
          { th: true, cell: String(c.position), attrs: { class: 'num' } },
          typeLabel(c.event_type),
          String(c.what || '').replace(/_/g, ' '),
          c.reference || '',
          c.effective_date,
          instant(c.recorded_at),
          c.actor,
          wrap(c.reason),
          moneyCell(c.amount),
          { cell: figures(c.before), attrs: { class: 'figs' } },
          { cell: figures(c.after), attrs: { class: 'figs' } },
        ]),
        rowAttrs: (i) => ({ 'data-position': String(l.changes[i].position) }),
      }), `${l.line} changes`))) : empty('No lines.'));
}

function expenditureText(x) {
  if (!x) return '—';
  return `${x.expenditure} · ${x.line} · ${money(x.amount)} · incurred ${x.incurred_on} · ${x.supplier} ${x.invoice} · position ${x.position} by ${x.actor}`;
}

function correctionsSection(cs) {
  const id = 'corrections-title';
  if (!cs || cs.error) return failed('Corrections register', id, cs && cs.error);
  return h('section', { class: 'card', 'aria-labelledby': id, 'data-section': 'corrections' },
    h('h2', { id }, 'Corrections register'),
    cs.length ? tableWrap(table({
      className: 'data',
      head: ['Original', 'Reversal', 'Replacement'],
      rows: cs.map((c) => [
        wrap(expenditureText(c.original)),
        `position ${c.reversal.position} · ${c.reversal.effective_date} · by ${c.reversal.actor}${c.reversal.reason ? ` · ${c.reversal.reason}` : ''}`,
        wrap(c.replacement ? expenditureText(c.replacement) : 'none'),
      ]),
      rowAttrs: (i) => ({ 'data-expenditure': cs[i].original && cs[i].original.expenditure }),
    }), 'Corrections') : empty('No corrections.'));
}

function approvalsSection(as) {
  const id = 'approvals-title';
  if (!as || as.error) return failed('Approvals log', id, as && as.error);
  const rows = as.map((a) => {
    if (a.kind === 'period-close' || a.kind === 'period-reopen') {
      return [a.kind.replace('-', ' '), a.period, `position ${a.position} · ${a.effective_date}`, a.by, a.reason || '', a.spent ? `spent ${money(a.spent)}` : '', { cell: statePill(a.kind === 'period-close' ? 'approved' : 'pending') }];
    }
    const details = a.details || {};
    const what = Array.isArray(details.deltas)
      ? details.deltas.map((x) => `${x.line} ${isNegative(x.amount && x.amount.amount) ? '' : '+'}${money(x.amount)}`).join(', ')
      : `${String(details.amendment || '').replace(/_/g, ' ')} to ${details.proposed_end || ''}`;
    const dec = a.decision;
    return [
      a.kind,
      a.id,
      `position ${a.position} · ${a.requested_effective}`,
      a.requested_by,
      wrap(a.reason),
      wrap(what),
      { cell: [statePill(dec ? (dec.approved ? 'approved' : 'rejected') : 'pending'), dec ? h('span', { class: 'muted block' }, `by ${dec.by} on ${dec.effective_date}${dec.reason ? `: ${dec.reason}` : ''}`) : null] },
    ];
  });
  return h('section', { class: 'card', 'aria-labelledby': id, 'data-section': 'approvals' },
    h('h2', { id }, 'Approvals log'),
    as.length ? tableWrap(table({ className: 'data', head: ['Kind', 'Id', 'Requested', 'By', 'Reason', 'What', 'Decision'], rows }), 'Approvals') : empty('No approvals.'));
}
