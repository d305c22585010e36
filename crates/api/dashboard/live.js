// Live streams (SSE). Each open stream reports its state; #live-status says
// "live" while every stream of the page is connected, "reconnecting"
// otherwise. A stream the browser gave up on is reopened after a pause,
// from the last position seen.

const streams = new Set();
let statusEl = null;
let onClosed = () => {};

/** Called when the browser gives up on a stream (it may be a lost session). */
export function setClosedHandler(fn) {
  onClosed = fn;
}

function show() {
  if (!statusEl) statusEl = document.getElementById('live-status');
  if (!statusEl) return;
  if (streams.size === 0) {
    statusEl.textContent = 'off';
    statusEl.dataset.live = 'off';
    statusEl.hidden = true;
    return;
  }
  statusEl.hidden = false;
  const all = [...streams].every((x) => x.open);
  statusEl.textContent = all ? 'live' : 'reconnecting';
  statusEl.dataset.live = all ? 'live' : 'reconnecting';
}

/**
 * Opens `url` (without `after`) from position `after`; `onEvent(position,
 * data)` per message. Answers a handle with close().
 */
export function openStream(url, after, onEvent) {
  const st = { open: false, es: null, last: after, timer: null, closed: false };
  const connect = () => {
    if (st.closed) return;
    const sep = url.includes('?') ? '&' : '?';
    const es = new EventSource(`${url}${sep}after=${encodeURIComponent(st.last ?? 0)}`, { withCredentials: true });
    st.es = es;
    es.onopen = () => { st.open = true; show(); };
    es.onerror = () => {
      st.open = false;
      show();
      if (es.readyState === EventSource.CLOSED && !st.closed) {
        es.close();
        onClosed();
        clearTimeout(st.timer);
        st.timer = setTimeout(connect, 3000);
      }
    };
    es.onmessage = (m) => {
      const pos = Number(m.lastEventId);
      if (Number.isFinite(pos) && pos > 0) st.last = pos;
      let data = null;
      try { data = JSON.parse(m.data); } catch { data = null; }
      if (data && Number.isFinite(Number(data.position))) st.last = Math.max(st.last || 0, Number(data.position));
      if (!st.open) { st.open = true; show(); }
      onEvent(st.last, data);
    };
  };
  streams.add(st);
  show();
  connect();
  return {
    close() {
      st.closed = true;
      clearTimeout(st.timer);
      if (st.es) st.es.close();
      streams.delete(st);
      show();
    },
  };
}

/** Closes every stream. */
export function closeAll() {
  for (const st of [...streams]) {
    st.closed = true;
    clearTimeout(st.timer);
    if (st.es) st.es.close();
    streams.delete(st);
  }
  show();
}
