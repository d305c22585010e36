// Small DOM builders. Text always goes in as text nodes (never as HTML), so
// values from the server cannot inject markup; no inline styles are used.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el && el.namespaceURI !== SVG_NS) el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected') { el[k] = Boolean(v); if (v) el.setAttribute(k, ''); }
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** h('div', {class: 'x'}, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs && (attrs instanceof Node || typeof attrs !== 'object' || Array.isArray(attrs))) {
    children.unshift(attrs);
  } else {
    setAttrs(el, attrs);
  }
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** A scrolling wrapper for a wide table (phones scroll it sideways). */
export function tableWrap(table, label) {
  return h('div', { class: 'table-wrap', role: 'region', tabindex: '0', 'aria-label': label || null }, table);
}

/** A table from headers and rows of cells (each cell a node, text, or {cell, attrs}). */
export function table({ caption, head, rows, foot, className, rowAttrs }) {
  const t = h('table', { class: className || null });
  if (caption) t.appendChild(h('caption', caption));
  t.appendChild(h('thead', h('tr', head.map((c) => (typeof c === 'object' && c && !(c instanceof Node) ? h('th', { scope: 'col', ...c.attrs }, c.text) : h('th', { scope: 'col' }, c))))));
  const body = h('tbody');
  rows.forEach((r, i) => {
    const tr = h('tr', rowAttrs ? rowAttrs(i) : null);
    r.forEach((c, j) => {
      if (c && typeof c === 'object' && !(c instanceof Node) && !Array.isArray(c) && 'cell' in c) {
        tr.appendChild(h(j === 0 && c.th ? 'th' : 'td', c.th ? { scope: 'row', ...c.attrs } : c.attrs, c.cell));
      } else {
        tr.appendChild(h('td', null, c));
      }
    });
    body.appendChild(tr);
  });
  t.appendChild(body);
  if (foot && foot.length) {
    const tf = h('tfoot');
    for (const r of foot) tf.appendChild(h('tr', r.map((c) => (c && typeof c === 'object' && 'cell' in c ? h(c.th ? 'th' : 'td', c.attrs || null, c.cell) : h('td', null, c)))));
    t.appendChild(tf);
  }
  return t;
}

/** An empty-state paragraph. */
export function empty(text) {
  return h('p', { class: 'empty' }, text);
}

/** A short random id part: uppercase letters and digits. */
export function randomPart(n = 8) {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

/** A fresh idempotency key. */
export function newKey() {
  if (typeof crypto.randomUUID === 'function') {
    try { return crypto.randomUUID(); } catch { /* not a secure context */ }
  }
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
