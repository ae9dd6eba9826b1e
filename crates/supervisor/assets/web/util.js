// Small helpers shared by the pages: building DOM safely (text is always set as text, never as
// HTML: hypotheses and logs come from programs and agents), formatting numbers and times, and
// talking to the dashboard's API.

/** Creates an element: h('a', {href: '/x', class: 'c'}, 'text', child, …). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An SVG element with attributes. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A number as the views print it: up to 6 significant digits, no trailing zeros. */
export function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e7 || a < 1e-4)) return v.toExponential(3);
  return String(Number(v.toPrecision(6)));
}

/** A percentage with its sign. */
export function pct(v) {
  if (v === null || v === undefined) return '';
  return (v >= 0 ? '+' : '') + v.toFixed(1) + '%';
}

/** Seconds as `1h 02m`, `3m 05s`, `4.2s`. */
export function secs(s) {
  if (s === null || s === undefined) return '–';
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

/** A parameter value as text. */
export function val(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** `HH:MM:SS` of an RFC 3339 time, or the text. */
export function clock(ts) {
  if (!ts) return '';
  const m = /T(\d\d:\d\d:\d\d)/.exec(ts);
  return m ? m[1] : ts;
}

/** Shortens text to `n` characters with an ellipsis. */
export function elide(s, n) {
  s = s || '';
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

/** The API path of workdir `key`. */
export function api(key, path) {
  return `/api/w/${encodeURIComponent(key)}/${path}`;
}

/** The page path of workdir `key` (`sub` = '', 'table', 'tree' or 'node/ID'). */
export function page(key, sub) {
  const base = `/w/${encodeURIComponent(key)}`;
  return sub ? `${base}/${sub}` : base;
}

/** The page of node `id`. */
export function nodePage(key, id) {
  return page(key, 'node/' + encodeURIComponent(id));
}

/** An error that carries the server's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function answer(resp) {
  const text = await resp.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (_) {
    body = null;
  }
  if (!resp.ok) {
    const msg = (body && (body.error || body.message)) || text || resp.statusText;
    throw new ApiError(resp.status, msg.trim());
  }
  return body;
}

/** GETs JSON. */
export async function getJSON(url) {
  return answer(await fetch(url, {credentials: 'same-origin', cache: 'no-store'}));
}

/** POSTs JSON and returns the JSON answer. */
export async function postJSON(url, body) {
  return answer(
    await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify(body || {}),
    }),
  );
}

/** A status pill. */
export function pill(status, text) {
  const word = (status || 'unknown').split(' ')[0];
  return h('span', {class: `pill st-${word}`}, text || status || 'unknown');
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat(Infinity)) if (c) el.append(c);
  return el;
}

/** Calls `fn` at most once per `ms`, and once more after the last call. */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return (...args) => {
    const now = Date.now();
    clearTimeout(timer);
    if (now - last >= ms) {
      last = now;
      fn(...args);
    } else {
      timer = setTimeout(() => {
        last = Date.now();
        fn(...args);
      }, ms - (now - last));
    }
  };
}
