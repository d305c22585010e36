// Timeline: a Gantt of milestones and reporting periods, the grant's end and
// effective end, and the amendments; a table carries the same for screen
// readers and small screens.

import { api, query, seg } from '../api.js';
import { gantt } from '../charts.js';
import { empty, h, table, tableWrap } from '../dom.js';
import { grantPath, link } from '../route.js';
import { numCell, statePill, viewQuery, wrap } from './common.js';

export function create(ctx) {
  const grant = ctx.route.grant;
  const params = ctx.params;
  return {
    name: 'timeline',
    title: `${grant} timeline`,
    async load({ minPosition, signal }) {
      return api(`/api/v1/grants/${seg(grant)}/timeline${query(viewQuery(params, { min_position: minPosition || null }))}`, { signal });
    },
    render(t) {
      const ms = t.milestones || [];
      const node = h('div', { class: 'page page-timeline', 'data-grant': grant },
        h('div', { class: 'page-header' },
          h('h1', `Timeline of ${grant}`),
          h('p', { class: 'subtitle' }, `${t.start} to ${t.end}`, t.effective_end !== t.end ? `, effective end ${t.effective_end}` : '', ` · statuses relative to ${t.today} · log position ${t.position}`),
          h('nav', { class: 'subnav', 'aria-label': 'Grant pages' }, h('a', { href: link(grantPath(grant), params) }, 'Budget and figures'))),
        h('section', { class: 'card', 'aria-labelledby': 'gantt-title' },
          h('h2', { id: 'gantt-title' }, 'Milestones and reporting periods'),
          h('dl', { class: 'ends' },
            h('div', { 'data-end': 'end' }, h('dt', 'Grant end'), h('dd', t.end)),
            h('div', { 'data-end': 'effective_end' }, h('dt', 'Effective end'), h('dd', t.effective_end)),
            h('div', h('dt', 'Reference day'), h('dd', t.today))),
          ms.length || (t.reporting_periods || []).length ? gantt(t) : empty('Nothing planned yet.')),
        milestoneTable(ms),
        periodTable(t.reporting_periods || []),
        amendmentTable(t.amendments || []));
      return { node, position: t.position };
    },
    streams(t, position) {
      return [{ url: `/api/v1/grants/${seg(grant)}/events/stream`, after: position }];
    },
  };
}

function milestoneTable(ms) {
  const t = table({
    className: 'data',
    head: ['Milestone', 'Title', 'Workstream', 'Kind', 'Baseline due', 'Current due', 'Achieved on', { text: 'Slip (days)', attrs: { class: 'num' } }, { text: 'Reschedules', attrs: { class: 'num' } }, 'Beyond end', 'Status'],
    rows: ms.map((m) => [
      { th: true, cell: m.id },
      wrap(m.title),
      m.workstream,
      m.kind,
      m.baseline_due,
      m.current_due,
      m.achieved_on || '—',
      numCell(String(m.slip_days), { 'data-col': 'slip_days' }),
      numCell(String(m.reschedules), { 'data-col': 'reschedules' }),
      { cell: m.beyond_end ? h('span', { class: 'flag flag-red', 'data-flag': 'beyond_end' }, `beyond end${m.amendment ? ` (${m.amendment})` : ''}`) : (m.amendment ? `cites ${m.amendment}` : 'no') },
      { cell: statePill(m.status) },
    ]),
    rowAttrs: (i) => ({ 'data-milestone': ms[i].id, 'data-status': ms[i].status }),
  });
  return h('section', { class: 'card', 'aria-labelledby': 'ms-title' }, h('h2', { id: 'ms-title' }, `Milestones (${ms.length})`), ms.length ? tableWrap(t, 'Milestones') : empty('No milestones.'));
}

function periodTable(ps) {
  const t = table({
    className: 'data',
    head: ['Period', 'From', 'To', 'Report due', 'State'],
    rows: ps.map((p) => [{ th: true, cell: p.id }, p.start, p.end, p.report_due, p.closed ? 'closed' : 'open']),
    rowAttrs: (i) => ({ 'data-period': ps[i].id }),
  });
  return h('section', { class: 'card', 'aria-labelledby': 'periods-title' }, h('h2', { id: 'periods-title' }, 'Reporting periods'), ps.length ? tableWrap(t, 'Reporting periods') : empty('No reporting periods.'));
}

function amendmentTable(as) {
  const t = table({
    className: 'data',
    head: ['Amendment', 'Kind', 'Requested on', 'Proposed end', 'Status'],
    rows: as.map((a) => [{ th: true, cell: a.id }, String(a.kind).replace(/_/g, ' '), a.requested_on, a.proposed_end, { cell: statePill(a.status) }]),
    rowAttrs: (i) => ({ 'data-amendment': as[i].id, 'data-status': as[i].status }),
  });
  return h('section', { class: 'card', 'aria-labelledby': 'amend-title' }, h('h2', { id: 'amend-title' }, 'Amendments (extensions)'), as.length ? tableWrap(t, 'Amendments') : empty('No amendments.'));
}
