// Operator: the log's head, the last chain verification (with "Verify
// now"), the views' position and lag, and a live tail of the log.

import { api, describe } from '../api.js';
import { empty, h, table, tableWrap } from '../dom.js';
import { instant, typeLabel } from '../format.js';
import { openStream } from '../live.js';

const TAIL = 50;

export function create(ctx) {
  let root = null;
  let statusPart = null;
  let tailBody = null;
  let tailStream = null;
  let verifyResult = null;
  const tail = [];

  function renderTail() {
    tailBody.replaceChildren(...(tail.length
      ? [tableWrap(table({
        className: 'data compact tail-table',
        head: [{ text: 'Position', attrs: { class: 'num' } }, 'Stream', 'Type', 'Who', 'Recorded at', 'Effective date'],
        rows: tail.map((e) => [{ th: true, cell: String(e.position), attrs: { class: 'num' } }, e.stream || '', typeLabel(e.type), e.actor || '', instant(e.recorded_at), e.effective_date || '—']),
        rowAttrs: (i) => ({ 'data-position': String(tail[i].position) }),
      }), 'Live tail')]
      : [empty('Waiting for events…')]));
  }

  function onEvent(pos, data) {
    if (!data) return;
    if (tail.some((e) => e.position === data.position)) return;
    tail.unshift(data);
    tail.sort((a, b) => b.position - a.position);
    tail.length = Math.min(tail.length, TAIL);
    renderTail();
    ctx.refresh(data.position);
  }

  async function verify(btn, out) {
    btn.disabled = true;
    out.textContent = 'Verifying the chain…';
    try {
      const v = await api('/api/v1/audit/verify');
      verifyResult = v;
      out.textContent = '';
    } catch (e) {
      verifyResult = { error: describe(e) };
    } finally {
      btn.disabled = false;
    }
    await ctx.refreshNow();
  }

  function status(o) {
    const lv = o.last_verification;
    const btn = h('button', { type: 'button', id: 'verify-now', class: 'primary' }, 'Verify now');
    const out = h('p', { id: 'verify-progress', role: 'status', class: 'muted' });
    btn.addEventListener('click', () => verify(btn, out));
    const vr = verifyResult;
    return h('div', { class: 'operator-status' },
      h('section', { class: 'tiles', 'aria-label': 'Log state' },
        opTile('head_position', 'Head position', o.head ? String(o.head.position) : 'empty log'),
        opTile('projection_position', 'Views at position', String(o.projection_position ?? '—')),
        opTile('lag_events', 'Views behind by', o.lag_events === null || o.lag_events === undefined ? '—' : `${o.lag_events} event${o.lag_events === 1 ? '' : 's'}`),
        opTile('backend', 'Backend', o.backend || '—'),
        opTile('status', 'Status', o.status || '—')),
      h('section', { class: 'card', 'aria-labelledby': 'head-title' },
        h('h2', { id: 'head-title' }, 'Chain head'),
        o.head ? h('dl', { class: 'kv' },
          h('dt', 'Position'), h('dd', { 'data-field': 'head-position' }, String(o.head.position)),
          h('dt', 'Hash'), h('dd', h('code', { class: 'hash', 'data-field': 'head-hash' }, o.head.hash))) : empty('The log is empty.')),
      h('section', { class: 'card', 'aria-labelledby': 'verify-title', 'data-section': 'verification' },
        h('h2', { id: 'verify-title' }, 'Verification'),
        lv ? h('dl', { class: 'kv' },
          h('dt', 'Result'), h('dd', { 'data-field': 'verification-ok', 'data-ok': String(Boolean(lv.ok)) }, h('span', { class: `badge badge-${lv.ok ? 'green' : 'red'}` }, lv.ok ? '● chain verifies' : '■ chain broken')),
          h('dt', 'At'), h('dd', instant(lv.at)),
          h('dt', 'Events checked'), h('dd', String(lv.events ?? '—')),
          h('dt', 'Up to position'), h('dd', String(lv.head_position ?? '—')),
          lv.detail ? [h('dt', 'Detail'), h('dd', lv.detail)] : null) : h('p', { class: 'muted' }, 'Not verified since this server started.'),
        vr && vr.error ? h('p', { class: 'form-error', role: 'alert' }, vr.error) : null,
        vr && !vr.error && !vr.ok && vr.first_bad ? h('p', { class: 'form-error', role: 'alert' }, `First bad position ${vr.first_bad.position}: ${vr.first_bad.problem}`) : null,
        h('div', { class: 'actions' }, btn),
        out));
  }

  return {
    name: 'operator',
    title: 'Operator',
    async load({ signal }) {
      return api('/api/v1/operator', { signal });
    },
    render(o) {
      if (!root) {
        statusPart = h('div');
        tailBody = h('div', { id: 'tail' });
        root = h('div', { class: 'page page-operator' },
          h('div', { class: 'page-header' }, h('h1', 'Operator'), h('p', { class: 'subtitle' }, 'The log, its verification and the views that read it.')),
          statusPart,
          h('section', { class: 'card', 'aria-labelledby': 'tail-title' }, h('h2', { id: 'tail-title' }, `Live tail (last ${TAIL}, newest first)`), tailBody));
        renderTail();
      }
      statusPart.replaceChildren(status(o));
      return { node: root, position: o.head ? o.head.position : 0 };
    },
    streams(o) {
      const head = o.head ? Number(o.head.position) : 0;
      if (!tailStream) tailStream = openStream('/api/v1/events/stream', Math.max(0, head - 20), onEvent);
      return [];
    },
    destroy() {
      if (tailStream) tailStream.close();
    },
  };
}

function opTile(name, label, value) {
  return h('div', { class: 'tile', 'data-figure': name, 'data-value': value }, h('span', { class: 'tile-label' }, label), h('span', { class: 'tile-value' }, value));
}
