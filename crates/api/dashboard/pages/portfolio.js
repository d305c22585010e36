// Portfolio: every programme the user may see, one table each.

import { api, can, query, seg } from '../api.js';
import { h, table, tableWrap, empty } from '../dom.js';
import { burn, money, pct, raw } from '../format.js';
import { grantPath, link } from '../route.js';
import { moneyCell, numCell, pageHeader, statusBadge } from './common.js';

/** Most programme streams the page opens (the browser allows six connections per server). */
const STREAMS_MAX = 3;
/** How often the portfolio of more programmes is read again. */
const POLL_MS = 5000;

export function create(ctx) {
  const { params } = ctx;
  let poll = null;
  return {
    name: 'portfolio',
    title: 'Portfolio',
    async load({ minPosition, signal }) {
      const programmes = (await api('/api/v1/programmes', { signal })) || [];
      const views = await Promise.all(programmes.map((p) =>
        api(`/api/v1/programmes/${seg(p.id)}/portfolio${query({ as_of: params.as_of, known_at: params.known_at, today: params.as_of, min_position: minPosition || null })}`, { signal })));
      return { programmes, views };
    },
    render({ programmes, views }) {
      const node = h('div', { class: 'page page-portfolio' },
        pageHeader('Portfolio', 'Grants by programme: award, spending, burn and what needs attention.'));
      if (!programmes.length) node.appendChild(h('section', { class: 'card' }, empty('No programme is visible to you.')));
      let position = 0;
      programmes.forEach((p, i) => {
        const v = views[i];
        position = Math.max(position, Number(v.position) || 0);
        node.appendChild(programmeTable(p, v, params));
      });
      return { node, position };
    },
    streams({ programmes, views }) {
      const after = Math.max(0, ...views.map((v) => Number(v.position) || 0));
      // One stream of the whole log for those who may read it.
      if (can.audit()) return [{ url: '/api/v1/events/stream', after }];
      if (programmes.length <= STREAMS_MAX) {
        return programmes.map((p, i) => ({ url: `/api/v1/programmes/${seg(p.id)}/events/stream`, after: views[i].position }));
      }
      // Each stream holds one of the browser's six connections to the
      // server: with more programmes than that leaves room for, look again
      // every few seconds instead.
      poll = setInterval(() => ctx.refresh(0), POLL_MS);
      return [];
    },
    destroy() {
      clearInterval(poll);
    },
  };
}

function programmeTable(p, v, params) {
  const grants = v.grants || [];
  const hid = `prog-${p.id}-title`;
  const rows = grants.map((g) => [
    { th: true, cell: h('a', { href: link(grantPath(g.grant), params), 'data-grant': g.grant }, g.grant), attrs: { 'data-col': 'grant' } },
    { cell: statusBadge(g.status), attrs: { 'data-col': 'status' } },
    { cell: [g.acronym ? h('strong', g.acronym) : null, g.acronym && g.title ? ' · ' : null, g.title || ''], attrs: { 'data-col': 'title', class: 'wrap' } },
    moneyCell(g.award, { 'data-col': 'award', 'data-value': g.award && g.award.amount }),
    moneyCell(g.spent, { 'data-col': 'spent', 'data-value': g.spent && g.spent.amount }),
    moneyCell(g.committed, { 'data-col': 'committed', 'data-value': g.committed && g.committed.amount }),
    numCell(burn(g.burn_index), { 'data-col': 'burn_index', 'data-value': raw(g.burn_index) }),
    numCell(g.time_elapsed_pct === undefined ? '—' : pct(g.time_elapsed_pct), { 'data-col': 'time_elapsed_pct', 'data-value': raw(g.time_elapsed_pct) }),
    numCell(String(g.overdue_milestones ?? 0), { 'data-col': 'overdue_milestones', class: g.overdue_milestones ? 'num warn-text' : 'num' }),
    numCell(String(g.pending_approvals ?? 0), { 'data-col': 'pending_approvals' }),
  ]);
  const foot = (v.totals || []).map((t) => [
    { th: true, cell: `Total ${t.currency}`, attrs: { scope: 'row', colspan: '3' } },
    moneyCell(t.award, { 'data-total': 'award', 'data-currency': t.currency, 'data-value': t.award && t.award.amount }),
    moneyCell(t.spent, { 'data-total': 'spent', 'data-currency': t.currency, 'data-value': t.spent && t.spent.amount }),
    moneyCell(t.committed, { 'data-total': 'committed', 'data-currency': t.currency, 'data-value': t.committed && t.committed.amount }),
    { cell: '', attrs: { colspan: '4' } },
  ]);
  const t = table({
    className: 'data portfolio-table',
    head: ['Grant', 'Status', 'Title', { text: 'Award', attrs: { class: 'num' } }, { text: 'Spent', attrs: { class: 'num' } }, { text: 'Committed', attrs: { class: 'num' } }, { text: 'Burn index', attrs: { class: 'num' } }, { text: 'Time elapsed', attrs: { class: 'num' } }, { text: 'Overdue milestones', attrs: { class: 'num' } }, { text: 'Pending approvals', attrs: { class: 'num' } }],
    rows,
    foot,
    rowAttrs: (i) => ({ 'data-grant': grants[i].grant, 'data-status': grants[i].status }),
  });
  const summary = (v.totals || []).map((tt) => `${money(tt.spent)} spent of ${money(tt.award)}`).join('; ');
  return h('section', { class: 'card programme', 'aria-labelledby': hid, 'data-programme': p.id },
    h('h2', { id: hid }, p.name || p.id, ' ', h('span', { class: 'muted' }, `(${p.id})`)),
    h('p', { class: 'subtitle' }, grants.length ? `${grants.length} grant${grants.length === 1 ? '' : 's'}${summary ? `: ${summary}` : ''}.` : 'No grants yet.', v.today ? ` Statuses as of ${v.today}.` : ''),
    grants.length ? tableWrap(t, `${p.name || p.id} grants`) : null);
}
