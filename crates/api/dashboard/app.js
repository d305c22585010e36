// The dashboard: sign-in, the header and view controls, the hash router,
// page rendering with live refresh. Every page module exports
// create(ctx) -> { name, load({minPosition, signal}), render(data) ->
// {node, position}, streams?(data, position) -> [{url, after}], destroy?() }.

import { api, ApiError, can, describe, loadSession, session, setUnauthorizedHandler, signIn, signOut } from './api.js';
import { h } from './dom.js';
import * as live from './live.js';
import { grantPath, link, normaliseParams, paramsText, parseHash } from './route.js';
import * as portfolio from './pages/portfolio.js';
import * as grant from './pages/grant.js';
import * as timeline from './pages/timeline.js';
import * as history from './pages/history.js';
import * as operator from './pages/operator.js';

const app = document.getElementById('app');
const nav = document.getElementById('nav');
const controls = document.getElementById('view-controls');
const asOfInput = document.getElementById('as-of');
const knownAtInput = document.getElementById('known-at');
const viewError = document.getElementById('view-error');
const banner = document.getElementById('view-banner');

let current = null; // { route, page, position, abort }
let generation = 0;
let refreshTimer = null;
let pendingMin = 0;

function setState(state) {
  document.body.dataset.state = state;
  // The first render's time since navigation began (the benchmark reads it).
  if (state === 'ready' && !document.body.dataset.firstReadyMs) {
    document.body.dataset.firstReadyMs = String(Math.round(performance.now()));
  }
}

// ---------------------------------------------------------------- header

function renderUser() {
  const box = document.getElementById('user');
  const u = session.user;
  box.hidden = !u;
  controls.hidden = !u;
  document.getElementById('user-name').textContent = u ? u.name : '';
  const role = document.getElementById('user-role');
  role.textContent = u ? u.role : '';
  role.dataset.role = u ? u.role : '';
}

function renderNav(route) {
  nav.replaceChildren();
  if (!session.user) return;
  const items = [{ path: '/', label: 'Portfolio', active: route.name === 'portfolio' }];
  if (route.grant) {
    items.push({ path: grantPath(route.grant), label: route.grant, active: route.name === 'grant' });
    items.push({ path: grantPath(route.grant, 'timeline'), label: 'Timeline', active: route.name === 'timeline' });
    if (can.history()) items.push({ path: grantPath(route.grant, 'history'), label: 'History', active: route.name === 'history' });
  }
  if (can.operator()) items.push({ path: '/operator', label: 'Operator', active: route.name === 'operator' });
  const ul = h('ul');
  for (const it of items) {
    ul.appendChild(h('li', h('a', { href: link(it.path, route.params), 'aria-current': it.active ? 'page' : null, class: it.active ? 'active' : null }, it.label)));
  }
  nav.appendChild(ul);
}

function syncControls(route) {
  asOfInput.value = route.params.as_of || '';
  knownAtInput.value = route.params.known_at || '';
  for (const el of [asOfInput, knownAtInput]) el.removeAttribute('aria-invalid');
  viewError.textContent = '';
  viewError.hidden = true;
  const parts = [];
  if (route.params.as_of) parts.push(`facts effective on or before ${route.params.as_of}`);
  if (route.params.known_at) parts.push(`as recorded by ${route.params.known_at}`);
  banner.textContent = parts.length ? `Showing ${parts.join(', ')}.` : 'Showing every fact recorded up to now.';
  banner.dataset.pointInTime = parts.length ? 'true' : 'false';
}

function applyControls(params) {
  const r = parseHash();
  const base = `#/${r.parts.map(encodeURIComponent).join('/')}`;
  const next = base + paramsText(params);
  if (next === location.hash || (next === '#/' && (location.hash === '' || location.hash === '#'))) navigate();
  else location.hash = next;
}

controls.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const { params, errors } = normaliseParams(asOfInput.value, knownAtInput.value);
  asOfInput.removeAttribute('aria-invalid');
  knownAtInput.removeAttribute('aria-invalid');
  if (errors.as_of) asOfInput.setAttribute('aria-invalid', 'true');
  if (errors.known_at) knownAtInput.setAttribute('aria-invalid', 'true');
  const msgs = Object.values(errors);
  if (msgs.length) {
    viewError.textContent = msgs.join(' ');
    viewError.hidden = false;
    return;
  }
  applyControls(params);
});

document.getElementById('view-reset').addEventListener('click', () => {
  asOfInput.value = '';
  knownAtInput.value = '';
  applyControls({ as_of: '', known_at: '' });
});

document.getElementById('signout').addEventListener('click', async () => {
  const btn = document.getElementById('signout');
  btn.disabled = true;
  try {
    await signOut();
  } catch {
    // The session is dropped here whatever the server answered.
  } finally {
    btn.disabled = false;
  }
  showSignin();
});

document.getElementById('skip-link').addEventListener('click', (ev) => {
  ev.preventDefault();
  app.focus();
});

// ---------------------------------------------------------------- sign-in

function showSignin(message) {
  teardown();
  session.user = null;
  renderUser();
  renderNav({ name: 'signin', params: {} });
  const error = h('p', { id: 'signin-error', class: 'form-error', role: 'alert', hidden: !message }, message || '');
  const input = h('input', { id: 'signin-token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false', 'aria-describedby': 'signin-help' });
  const submit = h('button', { id: 'signin-submit', type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { id: 'signin', class: 'card signin', novalidate: true },
    h('h1', 'Sign in'),
    h('div', { class: 'field' },
      h('label', { for: 'signin-token' }, 'Access token'),
      input,
      h('p', { id: 'signin-help', class: 'hint' }, 'Paste the token you were given (it starts with glt_). It is used once to open a session and is not stored by this page.')),
    error,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      error.textContent = 'Enter your access token.';
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    submit.disabled = true;
    error.hidden = true;
    setState('loading');
    try {
      await signIn(token);
      input.value = '';
      navigate();
    } catch (e) {
      input.value = '';
      error.textContent = e instanceof ApiError && e.status === 401 ? 'That token was not accepted. Check it and try again.' : describe(e);
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      submit.disabled = false;
      setState('ready');
      input.focus();
    }
  });
  app.replaceChildren(h('div', { class: 'signin-wrap' }, form));
  app.dataset.page = 'signin';
  app.dataset.position = '';
  document.title = 'Sign in · grantlog';
  setState('ready');
  input.focus();
}

setUnauthorizedHandler(() => showSignin('Your session has ended. Sign in again.'));
// A stream refused: if the session is gone, the check answers 401 and the sign-in form shows.
live.setClosedHandler(() => { if (session.user) api('/api/v1/session').catch(() => {}); });

// ---------------------------------------------------------------- pages

const PAGES = { portfolio, grant, timeline, history, operator };

function teardown() {
  generation++;
  clearTimeout(refreshTimer);
  pendingMin = 0;
  if (current) {
    if (current.abort) current.abort.abort();
    if (current.page && current.page.destroy) current.page.destroy();
  }
  current = null;
  live.closeAll();
}

function notAllowed(route, text) {
  app.replaceChildren(h('section', { class: 'card notice', role: 'alert' }, h('h1', 'Not available'), h('p', text), h('p', h('a', { href: link('/', route.params) }, 'Back to the portfolio'))));
  app.dataset.page = route.name;
  app.dataset.position = '';
  setState('ready');
}

function focusKey(el) {
  if (!el || el === document.body || !app.contains(el)) return null;
  if (el.id) return `#${CSS.escape(el.id)}`;
  if (el.dataset.line && el.dataset.figure) return `[data-line="${CSS.escape(el.dataset.line)}"][data-figure="${CSS.escape(el.dataset.figure)}"]`;
  if (el.dataset.focusKey) return `[data-focus-key="${CSS.escape(el.dataset.focusKey)}"]`;
  return null;
}

/** Renders loaded data into #app, keeping the focus where it was. */
function show(cur, data) {
  const key = focusKey(document.activeElement);
  const { node, position } = cur.page.render(data);
  if (app.firstElementChild !== node || app.childElementCount !== 1) app.replaceChildren(node);
  app.dataset.page = cur.page.name;
  app.dataset.position = position === null || position === undefined ? '' : String(position);
  cur.position = position;
  if (key && (document.activeElement === document.body || !document.activeElement || !document.activeElement.isConnected)) {
    const again = app.querySelector(key);
    if (again) again.focus();
  }
  return position;
}

/** Renders the last data again (a filter or page size changed). */
function rerender() {
  const cur = current;
  if (!cur || cur.data === undefined) return;
  setState('loading');
  show(cur, cur.data);
  setState('ready');
}

/** Loads and renders the current page; `minPosition` waits for a write or event. */
async function refresh(minPosition) {
  if (!current) return;
  const gen = ++generation;
  const cur = current;
  if (cur.abort) cur.abort.abort();
  cur.abort = new AbortController();
  setState('loading');
  app.setAttribute('aria-busy', 'true');
  try {
    const data = await cur.page.load({ minPosition: minPosition || null, signal: cur.abort.signal });
    if (gen !== generation || cur !== current) return;
    cur.data = data;
    if (viewError.textContent.startsWith('Could not refresh')) { viewError.textContent = ''; viewError.hidden = true; }
    const position = show(cur, data);
    if (minPosition && Number(position) < minPosition) {
      // The views lag the log by a moment: look again until they show it.
      cur.lagTries = (cur.lagTries || 0) + 1;
      if (cur.lagTries <= 20) setTimeout(() => { if (cur === current) scheduleRefresh(minPosition); }, 250);
    } else {
      cur.lagTries = 0;
    }
    if (!cur.streamsOpen && cur.page.streams) {
      cur.streamsOpen = true;
      for (const s of cur.page.streams(data, position) || []) {
        live.openStream(s.url, s.after, (pos) => scheduleRefresh(pos));
      }
    }
  } catch (e) {
    if (e && e.name === 'AbortError') return;
    if (gen !== generation || cur !== current) return;
    if (e instanceof ApiError && e.status === 401) return; // sign-in shown
    if (e instanceof ApiError && e.status === 503 && minPosition) {
      // The views have not caught up yet: try again shortly.
      setTimeout(() => { if (cur === current) scheduleRefresh(minPosition); }, 500);
      return;
    }
    if (cur.data !== undefined && !(e instanceof ApiError && e.status >= 400 && e.status < 500)) {
      // A refresh failed (the network, a restart): keep what is shown and say so.
      viewError.textContent = `Could not refresh: ${describe(e)} Showing the figures at position ${cur.position}.`;
      viewError.hidden = false;
      return;
    }
    app.replaceChildren(errorPanel(e, cur.route));
    app.dataset.page = cur.page.name;
    app.dataset.position = '';
  } finally {
    if (gen === generation) {
      app.removeAttribute('aria-busy');
      setState('ready');
    }
  }
}

function errorPanel(e, route) {
  const p = e instanceof ApiError ? e.problem : null;
  const title = e instanceof ApiError && e.status === 404 ? 'Not found' : e instanceof ApiError && e.status === 403 ? 'Not allowed' : 'Could not load this page';
  const list = p && Array.isArray(p.errors) && p.errors.length
    ? h('ul', p.errors.map((x) => h('li', `${x.pointer}: ${x.detail}`)))
    : null;
  if (p && Array.isArray(p.errors)) {
    for (const x of p.errors) {
      if (x.pointer === '?as_of') asOfInput.setAttribute('aria-invalid', 'true');
      if (x.pointer === '?known_at') knownAtInput.setAttribute('aria-invalid', 'true');
    }
  }
  return h('section', { class: 'card notice error', role: 'alert' },
    h('h1', title),
    h('p', { class: 'problem-detail' }, (p && (p.detail || p.title)) || describe(e)),
    list,
    h('p', h('a', { href: link('/', route.params) }, 'Back to the portfolio')));
}

/** Debounced refresh after a live event. */
function scheduleRefresh(minPosition) {
  // A view of what was known at an instant does not move with the log.
  if (current && current.route.params.known_at) minPosition = 0;
  if (minPosition) pendingMin = Math.max(pendingMin, minPosition);
  if (current) setState('loading');
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    const min = pendingMin;
    pendingMin = 0;
    refresh(min);
  }, 100);
}

async function navigate() {
  teardown();
  if (!session.user) {
    showSignin();
    return;
  }
  const route = parseHash();
  renderUser();
  renderNav(route);
  syncControls(route);
  const mod = PAGES[route.name];
  if (!mod) {
    app.replaceChildren(h('section', { class: 'card notice', role: 'alert' }, h('h1', 'Page not found'), h('p', h('a', { href: link('/', route.params) }, 'Go to the portfolio'))));
    app.dataset.page = 'notfound';
    app.dataset.position = '';
    setState('ready');
    return;
  }
  if (route.name === 'history' && !can.history()) return notAllowed(route, 'The history of a grant is not shown to viewers.');
  if (route.name === 'operator' && !can.operator()) return notAllowed(route, 'The operator page is for auditors and admins.');
  const ctx = {
    route,
    params: route.params,
    refresh: (min) => scheduleRefresh(min),
    refreshNow: (min) => refresh(min),
    rerender,
  };
  current = { route, page: mod.create(ctx), position: null, streamsOpen: false };
  document.title = `${current.page.title || current.page.name} · grantlog`;
  app.dataset.page = current.page.name;
  await refresh(null);
  // A new page: screen readers start at its content, not at a removed link.
  if (!document.activeElement || document.activeElement === document.body) app.focus({ preventScroll: true });
}

window.addEventListener('hashchange', () => navigate());
// A page left for another (and perhaps kept in the back/forward cache)
// closes its live streams: an open stream holds one of the browser's few
// connections to this server, and enough of them stall every request of
// the next page. Coming back from the cache opens them again.
window.addEventListener('pagehide', () => teardown());
window.addEventListener('pageshow', (e) => { if (e.persisted) navigate(); });

async function boot() {
  setState('loading');
  try {
    await loadSession();
  } catch (e) {
    showSignin(describe(e));
    return;
  }
  navigate();
}

boot();
