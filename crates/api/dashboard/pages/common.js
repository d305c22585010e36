// Pieces shared by pages.

import { h } from '../dom.js';
import { money } from '../format.js';

const STATUS_TEXT = { green: 'Green: on track', amber: 'Amber: watch', red: 'Red: at risk' };
const STATUS_ICON = { green: '●', amber: '▲', red: '■' };

/** A status badge: colour, a shape and words. */
export function statusBadge(status) {
  const s = String(status || '').toLowerCase();
  return h('span', { class: `badge badge-${s}`, 'data-status': s },
    h('span', { class: 'badge-icon', 'aria-hidden': 'true' }, STATUS_ICON[s] || '•'),
    ' ', STATUS_TEXT[s] || s || 'unknown');
}

const MILESTONE_TEXT = { planned: 'Planned', at_risk: 'At risk', overdue: 'Overdue', achieved: 'Achieved', cancelled: 'Cancelled', pending: 'Pending', approved: 'Approved', rejected: 'Rejected' };
const MILESTONE_TONE = { planned: 'neutral', at_risk: 'amber', overdue: 'red', achieved: 'green', cancelled: 'muted', pending: 'amber', approved: 'green', rejected: 'muted' };

/** A milestone or request status as a labelled pill. */
export function statePill(status) {
  const s = String(status || '');
  return h('span', { class: `pill pill-${MILESTONE_TONE[s] || 'neutral'}`, 'data-status': s }, MILESTONE_TEXT[s] || s);
}

/** A money cell (right aligned, tabular figures). */
export function moneyCell(m, attrs) {
  return { cell: money(m), attrs: { class: 'num', ...(attrs || {}) } };
}

/** A numeric cell. */
export function numCell(text, attrs) {
  return { cell: text, attrs: { class: 'num', ...(attrs || {}) } };
}

/** Page heading with an optional subtitle and actions. */
export function pageHeader(title, subtitle, ...extra) {
  return h('div', { class: 'page-header' }, h('h1', title), subtitle ? h('p', { class: 'subtitle' }, subtitle) : null, ...extra);
}

/** A section with a heading. */
export function section(title, id, ...children) {
  const hid = id ? `${id}-title` : null;
  return h('section', { class: 'card', id: id || null, 'aria-labelledby': hid }, h('h2', { id: hid }, title), ...children);
}

/** The query for a view from the route's parameters (today = as_of when set). */
export function viewQuery(params, extra) {
  return { as_of: params.as_of || null, known_at: params.known_at || null, today: params.as_of || null, ...(extra || {}) };
}

/** A cell whose text may wrap (titles, reasons). */
export function wrap(text) {
  return { cell: text || '', attrs: { class: 'wrap' } };
}
