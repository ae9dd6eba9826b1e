// The dashboard's single page: routes in the browser (links change the address without
// reloading), keeps one live connection (server-sent events) per workdir shown, and tells the
// current page to refresh its data when the server has a new snapshot.
//
// Pages: /            the list of workdirs (or the only workdir's overview)
//        /w/KEY       overview and progress chart
//        /w/KEY/table the experiments table
//        /w/KEY/tree  the hypothesis tree
//        /w/KEY/node/ID one experiment

import {h, fill, getJSON, pill, page, api, fmt} from './util.js';
import {OverviewPage} from './overview.js';
import {TablePage} from './table.js';
import {TreePage} from './tree.js';
import {NodePage} from './node.js';

const main = document.getElementById('main');
const crumb = document.getElementById('crumb');
const tabs = document.getElementById('tabs');
const liveBadge = document.getElementById('live');

const app = {
  info: null,
  key: null,
  source: null,
  version: 0,
  status: null,
  page: null,
  /** Goes to `path` without reloading the page. */
  navigate(path, replace) {
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
    route();
  },
};
window.__ar = app;
// Script errors are kept (the tests read them) and shown, never swallowed.
app.errors = [];
window.addEventListener('error', (e) => app.errors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => app.errors.push(String(e.reason)));

function setLive(state, text) {
  liveBadge.className = 'live ' + state;
  liveBadge.textContent = text;
}

/** Opens (or keeps) the event stream of workdir `key`. */
function connect(key) {
  if (app.key === key && app.source) return;
  if (app.source) app.source.close();
  app.key = key;
  app.version = 0;
  setLive('off', 'connecting…');
  const source = new EventSource(api(key, 'events'));
  app.source = source;
  source.addEventListener('open', () => setLive('on', 'live'));
  source.addEventListener('error', () => setLive('off', 'reconnecting…'));
  source.addEventListener('update', (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch (_) {
      return;
    }
    setLive('on', 'live');
    app.status = msg.status;
    updateCrumbStatus();
    if (msg.version !== app.version) {
      app.version = msg.version;
      if (app.page && app.page.onUpdate) app.page.onUpdate(msg);
    }
  });
}

function disconnect() {
  if (app.source) app.source.close();
  app.source = null;
  app.key = null;
  setLive('idle', '');
}

function updateCrumbStatus() {
  const slot = document.getElementById('crumb-status');
  if (slot && app.status) fill(slot, pill(app.status));
}

function header(key, active) {
  const single = app.info && app.info.mode === 'single';
  fill(
    crumb,
    single ? null : h('a', {href: '/', 'data-nav': true}, 'all runs'),
    single ? null : h('span', {class: 'sep'}, '/'),
    h('a', {href: page(key), 'data-nav': true, class: 'wd'}, key),
    h('span', {id: 'crumb-status'}),
  );
  updateCrumbStatus();
  const tab = (sub, label) =>
    h('a', {href: page(key, sub), 'data-nav': true, class: active === sub ? 'active' : null}, label);
  fill(tabs, tab('', 'Overview'), tab('table', 'Experiments'), tab('tree', 'Tree'));
}

/** The landing page of a folder: its workdirs, refreshed every 2 s. */
class ListPage {
  constructor() {
    this.timer = null;
  }
  async load() {
    fill(crumb, h('span', {class: 'wd'}, 'all runs'));
    fill(tabs);
    main.dataset.page = 'list';
    await this.refresh();
    this.timer = setInterval(() => this.refresh(), 2000);
  }
  async refresh() {
    let data;
    try {
      data = await getJSON('/api/workdirs');
    } catch (e) {
      fill(main, h('p', {class: 'error'}, e.message));
      return;
    }
    const rows = data.workdirs.map((w) =>
      h(
        'tr',
        {},
        h('td', {}, h('a', {href: page(w.key), 'data-nav': true}, w.key)),
        h('td', {}, pill(w.status)),
        h('td', {class: 'num'}, fmt(w.best)),
        h('td', {class: 'num'}, w.experiments),
        h('td', {class: 'muted'}, w.path),
      ),
    );
    fill(
      main,
      h('h1', {}, `Runs under ${data.root}`),
      rows.length
        ? h(
            'table',
            {class: 'grid'},
            h('thead', {}, h('tr', {}, ['workdir', 'status', 'best', 'experiments', 'path'].map((c) => h('th', {}, c)))),
            h('tbody', {}, rows),
          )
        : h('p', {class: 'muted'}, 'No workdirs here yet. Runs started under this folder appear by themselves.'),
    );
    main.dataset.ready = '1';
  }
  destroy() {
    clearInterval(this.timer);
  }
}

function route() {
  if (app.page && app.page.destroy) app.page.destroy();
  app.page = null;
  delete main.dataset.ready;
  const path = location.pathname;
  if (path === '/' || path === '') {
    if (app.info.mode === 'single') {
      app.navigate(page(app.info.single) + location.search, true);
      return;
    }
    disconnect();
    app.page = new ListPage();
    app.page.load();
    return;
  }
  const m = /^\/w\/([^/]+)(?:\/(table|tree|node)(?:\/(.+?))?)?\/?$/.exec(path);
  if (!m) {
    fill(main, h('p', {class: 'error'}, 'No such page. '), h('a', {href: '/', 'data-nav': true}, 'Start page'));
    return;
  }
  const key = decodeURIComponent(m[1]);
  const sub = m[2] || '';
  connect(key);
  header(key, sub);
  const ctx = {key, main, app};
  if (sub === 'table') app.page = new TablePage(ctx);
  else if (sub === 'tree') app.page = new TreePage(ctx);
  else if (sub === 'node' && m[3]) app.page = new NodePage(ctx, decodeURIComponent(m[3]));
  else app.page = new OverviewPage(ctx);
  main.dataset.page = sub || 'overview';
  app.page.load();
}

// Links marked data-nav change the page without a reload.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  app.navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', route);
window.addEventListener('pageshow', (e) => {
  if (e.persisted) location.reload();
});
// Leaving the page ends its live feed at once (a browser keeps few connections per host).
window.addEventListener('pagehide', () => {
  if (app.source) app.source.close();
  if (app.page && app.page.destroy) app.page.destroy();
});

async function start() {
  try {
    app.info = await getJSON('/api/info');
  } catch (e) {
    fill(main, h('p', {class: 'error'}, `The dashboard did not answer: ${e.message}`));
    return;
  }
  // The token (if any) is now a cookie: drop it from the address bar and the history.
  if (new URLSearchParams(location.search).has('token')) {
    const params = new URLSearchParams(location.search);
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : ''));
  }
  route();
}

start();
