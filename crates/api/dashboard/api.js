// The API client: session sign-in by cookie, the CSRF header on every
// unsafe request, problem+json errors as ApiError. The access token itself
// is sent once to create the session and never kept.

export const session = { user: null };

let onUnauthorized = () => {};

/** Called when any request answers 401 (the session is gone). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** A refused or failed request: status, and the problem body if any. */
export class ApiError extends Error {
  constructor(status, problem, message) {
    super(message || (problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || null;
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The query string of the set parameters (null, undefined and '' skipped). */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === '') continue;
    q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** Path segment escaping. */
export function seg(x) {
  return encodeURIComponent(x);
}

/**
 * fetch with the session cookie. Answers the parsed JSON (null for 204);
 * throws ApiError otherwise. `opts.idempotencyKey` sets Idempotency-Key.
 */
export async function api(path, opts = {}) {
  const method = (opts.method || 'GET').toUpperCase();
  const headers = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (UNSAFE.has(method) && session.user && session.user.csrf_token) headers['X-CSRF-Token'] = session.user.csrf_token;
  if (opts.idempotencyKey) headers['Idempotency-Key'] = opts.idempotencyKey;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      signal: opts.signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, null, 'The server could not be reached. Check the connection and try again.');
  }
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  let body = null;
  if (type.includes('json')) {
    try { body = await res.json(); } catch { body = null; }
  } else {
    try { body = await res.text(); } catch { body = null; }
  }
  if (res.ok) return body;
  const problem = body && typeof body === 'object' ? body : null;
  if (res.status === 401 && !opts.noAuthRedirect) {
    session.user = null;
    onUnauthorized();
  }
  throw new ApiError(res.status, problem);
}

/** GET /api/v1/session: the signed-in user, or null on 401. */
export async function loadSession() {
  try {
    session.user = await api('/api/v1/session', { noAuthRedirect: true });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) session.user = null;
    else throw e;
  }
  return session.user;
}

/** POST /api/v1/session with a token; the answer is kept, the token not. */
export async function signIn(token) {
  session.user = await api('/api/v1/session', { method: 'POST', body: { token }, noAuthRedirect: true });
  return session.user;
}

/** DELETE /api/v1/session. */
export async function signOut() {
  try {
    await api('/api/v1/session', { method: 'DELETE', noAuthRedirect: true });
  } finally {
    session.user = null;
  }
}

/** Role checks. */
export const can = {
  write: () => ['admin', 'manager'].includes(session.user?.role),
  explain: () => ['admin', 'manager', 'auditor'].includes(session.user?.role),
  history: () => ['admin', 'manager', 'auditor'].includes(session.user?.role),
  audit: () => ['admin', 'auditor'].includes(session.user?.role),
  operator: () => ['admin', 'auditor'].includes(session.user?.role),
};

/** Every page of a grant's history, in version order. */
export async function grantHistory(grant, signal) {
  const all = [];
  let after = null;
  for (let guard = 0; guard < 1000; guard++) {
    const page = await api(`/api/v1/grants/${seg(grant)}/history${query({ after_version: after, limit: 1000 })}`, { signal });
    const events = (page && page.events) || [];
    all.push(...events);
    if (events.length < 1000) break;
    after = events[events.length - 1].version;
  }
  return all;
}

/** A readable message for an error. */
export function describe(e) {
  if (e instanceof ApiError) {
    const p = e.problem;
    let text = (p && (p.detail || p.title)) || e.message;
    if (p && Array.isArray(p.errors) && p.errors.length) {
      text += ' ' + p.errors.map((x) => `${x.pointer}: ${x.detail}`).join('; ');
    }
    return text;
  }
  return (e && e.message) || String(e);
}
