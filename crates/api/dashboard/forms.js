// Write forms (managers and admins). Each form carries `data-write`, sends an
// Idempotency-Key made when the form is armed (a double click or a resend of
// the same attempt records once), shows a problem's `detail` in a form-level
// alert and each `errors[].pointer` beside its field.

import { api, ApiError, describe } from './api.js';
import { h, newKey } from './dom.js';

let fieldSeq = 0;

/**
 * Builds a form. spec = { id, title, intro, fields: [{ name, label, type:
 * 'text'|'date'|'select'|'textarea', required, hint, suffix, options(),
 * initial(), inputmode, placeholder, datalist() }], submit, pointer(p) ->
 * field name, request(values) -> { path, body } , onSuccess(answer) }.
 * Answers { form, update(), rearm() }.
 */
export function writeForm(spec) {
  const form = h('form', { id: spec.id, class: 'write-form', 'data-write': '', novalidate: true, 'aria-labelledby': `${spec.id}-title` });
  const alert = h('div', { class: 'form-error', role: 'alert', hidden: true });
  const status = h('p', { class: 'form-success', role: 'status' });
  const inputs = {};
  const boxes = {};
  form.appendChild(h('h3', { id: `${spec.id}-title` }, spec.title));
  if (spec.intro) form.appendChild(h('p', { class: 'hint' }, spec.intro));
  for (const f of spec.fields) {
    const inputId = `${spec.id}-${f.name}`;
    let input;
    if (f.type === 'select') {
      input = h('select', { id: inputId, name: f.name });
    } else if (f.type === 'textarea') {
      input = h('textarea', { id: inputId, name: f.name, rows: '2' });
    } else {
      input = h('input', { id: inputId, name: f.name, type: f.type || 'text', inputmode: f.inputmode || null, placeholder: f.placeholder || null, autocomplete: 'off', spellcheck: f.type === 'text' ? 'false' : null });
    }
    if (f.required) input.setAttribute('aria-required', 'true');
    const hintId = f.hint ? `${inputId}-hint` : null;
    if (hintId) input.setAttribute('aria-describedby', hintId);
    let list = null;
    if (f.datalist) {
      list = h('datalist', { id: `${inputId}-list` });
      input.setAttribute('list', list.id);
    }
    const control = f.suffix || f.prefix
      ? h('div', { class: 'input-group' }, f.prefix ? h('span', { class: 'affix', 'aria-hidden': 'true' }, f.prefix) : null, input, f.suffix ? h('span', { class: 'affix', 'aria-hidden': 'true' }, f.suffix) : null)
      : input;
    const label = h('label', { for: inputId }, f.label, f.required ? null : h('span', { class: 'optional' }, ' (optional)'));
    const box = h('div', { class: `field field-${f.name}` }, label, control, list, f.hint ? h('p', { id: hintId, class: 'hint' }, f.hint) : null);
    inputs[f.name] = input;
    boxes[f.name] = box;
    f.list = list;
    form.appendChild(box);
  }
  const button = h('button', { type: 'submit', class: 'primary', id: `${spec.id}-submit` }, spec.submit);
  form.appendChild(alert);
  form.appendChild(h('div', { class: 'actions' }, button));
  form.appendChild(status);

  let key = newKey();
  let busy = false;

  function fillOptions() {
    for (const f of spec.fields) {
      if (f.type === 'select' && f.options) {
        const el = inputs[f.name];
        const before = el.value;
        const opts = f.options();
        el.replaceChildren(...(opts.length ? opts.map((o) => h('option', { value: o.value }, o.label)) : [h('option', { value: '' }, f.emptyLabel || 'None')]));
        if (opts.some((o) => o.value === before)) el.value = before;
        else if (f.initial) {
          const v = f.initial(inputs);
          if (opts.some((o) => o.value === v)) el.value = v;
        }
        el.disabled = opts.length === 0;
      }
      if (f.list && f.datalist) f.list.replaceChildren(...f.datalist().map((v) => h('option', { value: v })));
    }
  }

  function clearErrors() {
    alert.hidden = true;
    alert.replaceChildren();
    for (const el of form.querySelectorAll('.field-error')) el.remove();
    for (const [name, input] of Object.entries(inputs)) {
      input.removeAttribute('aria-invalid');
      const f = spec.fields.find((x) => x.name === name);
      if (f && f.hint) input.setAttribute('aria-describedby', `${input.id}-hint`);
      else input.removeAttribute('aria-describedby');
    }
  }

  /** New key, new client id, fields back to their initial values. */
  function rearm(keepValues) {
    key = newKey();
    if (!keepValues) {
      for (const f of spec.fields) {
        const el = inputs[f.name];
        if (f.type === 'select') continue;
        el.value = f.initial ? f.initial(inputs) : '';
      }
    }
    fillOptions();
  }

  function showProblem(e) {
    const p = e instanceof ApiError ? e.problem : null;
    const detail = (p && (p.detail || p.title)) || describe(e);
    const unplaced = [];
    if (p && Array.isArray(p.errors)) {
      for (const x of p.errors) {
        const name = spec.pointer ? spec.pointer(String(x.pointer || '')) : null;
        const input = name && inputs[name];
        if (!input) { unplaced.push(x); continue; }
        const errId = `${input.id}-error-${++fieldSeq}`;
        const span = h('span', { class: 'field-error', 'data-error-for': x.pointer, id: errId }, x.detail);
        boxes[name].appendChild(span);
        input.setAttribute('aria-invalid', 'true');
        const described = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
        described.push(errId);
        input.setAttribute('aria-describedby', described.join(' '));
      }
    }
    alert.replaceChildren(h('p', { class: 'problem-detail' }, detail));
    if (unplaced.length) alert.appendChild(h('ul', unplaced.map((x) => h('li', `${x.pointer}: ${x.detail}`))));
    alert.hidden = false;
    const firstBad = form.querySelector('[aria-invalid="true"]');
    if (firstBad) firstBad.focus();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy) return;
    const values = {};
    for (const [name, input] of Object.entries(inputs)) values[name] = input.value.trim();
    let req;
    try {
      req = spec.request(values);
    } catch (e) {
      clearErrors();
      showProblem(e);
      return;
    }
    busy = true;
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    clearErrors();
    status.textContent = 'Recording…';
    delete status.dataset.position;
    try {
      const answer = await api(req.path, { method: 'POST', body: req.body, idempotencyKey: key });
      const pos = answer && answer.position;
      status.textContent = `Recorded at position ${pos}.`;
      status.dataset.position = String(pos);
      form.dataset.lastPosition = String(pos);
      rearm(false);
      if (spec.onSuccess) spec.onSuccess(answer);
    } catch (e) {
      status.textContent = '';
      if (e instanceof ApiError && e.status !== 0) {
        // The server answered: nothing was recorded, the next attempt is a new one.
        key = newKey();
      }
      showProblem(e);
    } finally {
      busy = false;
      button.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });

  rearm(false);
  return { form, update: fillOptions, rearm, inputs };
}

/** The field a JSON pointer names: its first segment when it is a field. */
export function firstSegment(names, aliases = {}) {
  return (pointer) => {
    if (aliases[pointer]) return aliases[pointer];
    for (const [prefix, name] of Object.entries(aliases)) {
      if (prefix.endsWith('*') && pointer.startsWith(prefix.slice(0, -1))) return name;
    }
    const first = pointer.replace(/^\//, '').split('/')[0];
    return names.includes(first) ? first : null;
  };
}
