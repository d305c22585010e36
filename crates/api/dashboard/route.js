// Hash routes: #/ , #/grants/{g}, #/grants/{g}/timeline, #/grants/{g}/history,
// #/operator; with ?as_of=YYYY-MM-DD&known_at=RFC3339 carried across pages.

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** The current route from location.hash. */
export function parseHash(hash = location.hash) {
  let text = hash.replace(/^#/, '');
  let queryText = '';
  const q = text.indexOf('?');
  if (q >= 0) {
    queryText = text.slice(q + 1);
    text = text.slice(0, q);
  }
  const parts = text.split('/').filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  const search = new URLSearchParams(queryText);
  const params = {
    as_of: search.get('as_of') || '',
    // A '+' of an offset reads as a space in a query string.
    known_at: (search.get('known_at') || '').replace(/ /g, '+'),
  };
  let name = 'notfound';
  let grant = null;
  if (parts.length === 0) name = 'portfolio';
  else if (parts[0] === 'operator' && parts.length === 1) name = 'operator';
  else if (parts[0] === 'grants' && parts.length >= 2) {
    grant = parts[1];
    if (parts.length === 2) name = 'grant';
    else if (parts.length === 3 && parts[2] === 'timeline') name = 'timeline';
    else if (parts.length === 3 && parts[2] === 'history') name = 'history';
  }
  return { name, grant, parts, params };
}

/** The query part of a hash for view parameters ('' when none is set). */
export function paramsText(params) {
  const out = [];
  if (params && params.as_of) out.push(`as_of=${encodeURIComponent(params.as_of)}`);
  if (params && params.known_at) out.push(`known_at=${String(params.known_at).replace(/%/g, '%25').replace(/\+/g, '%2B').replace(/&/g, '%26').replace(/#/g, '%23').replace(/ /g, '%20')}`);
  return out.length ? `?${out.join('&')}` : '';
}

/** A hash link to `path` ("/grants/x") keeping the view parameters. */
export function link(path, params = parseHash().params) {
  return `#${path}${paramsText(params)}`;
}

/** The path of a grant page. */
export function grantPath(grant, sub) {
  return `/grants/${encodeURIComponent(grant)}${sub ? '/' + sub : ''}`;
}

/** Validates and normalises the view parameters typed by the user. */
export function normaliseParams(asOf, knownAt) {
  const errors = {};
  const as_of = (asOf || '').trim();
  let known_at = (knownAt || '').trim();
  if (as_of && !DATE.test(as_of)) errors.as_of = 'Use a date like 2022-09-30.';
  if (known_at) {
    if (DATE.test(known_at)) known_at += 'T00:00:00Z';
    const m = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2})(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/.exec(known_at);
    if (!m || Number.isNaN(Date.parse(known_at.replace(' ', 'T')))) {
      errors.known_at = 'Use an RFC 3339 instant like 2022-10-15T00:00:00Z, or leave empty for now.';
    } else {
      known_at = `${m[1]}T${m[2]}${m[3] || ':00'}${m[5].toUpperCase()}`;
    }
  }
  return { params: { as_of, known_at }, errors };
}
