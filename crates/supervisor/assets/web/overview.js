// The run overview: status, best against the baseline, counts, budgets, what runs and what
// waits (with bump, drop and stop when control is allowed), the progress chart and one small
// chart per other metric, the last results and events.

import {h, fill, fmt, pct, secs, clock, getJSON, postJSON, api, nodePage, pill, elide} from './util.js';
import {Chart} from './chart.js';

function card(title, ...body) {
  return h('section', {class: 'card'}, h('h2', {}, title), ...body);
}

function kv(rows) {
  return h(
    'dl',
    {class: 'kv'},
    rows.filter((r) => r && r[1] !== null && r[1] !== undefined && r[1] !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
  );
}

function used(a, b, f) {
  const fa = a === null || a === undefined ? '–' : f(a);
  return b === null || b === undefined ? fa : `${fa} / ${f(b)}`;
}

function eventText(e) {
  const name = e.event.replace(/^(node|spec)_/, '');
  const what = {
    engine_started: 'engine started',
    engine_interrupted: 'engine interrupted',
    engine_stopped: 'engine stopped',
    queued: 'queued',
    started: 'started',
    phase: 'phase',
    completed: 'completed',
    failed: 'failed',
    cancelled: 'interrupted',
    dropped: 'dropped from the queue',
    bumped: 'priority changed',
    checkpoint_edit: 'checkpoint edit',
    warning: 'warning',
  }[name] || e.event;
  let detail = e.detail ? ` — ${elide(e.detail, 140)}` : '';
  if (name === 'queued' || name === 'bumped') detail = e.detail ? ` (priority ${e.detail})` : '';
  if (name === 'phase') detail = e.detail ? ` → ${e.detail}` : '';
  return [what, e.id ? ` ${e.id}` : '', detail].join('');
}

export class OverviewPage {
  constructor(ctx) {
    this.ctx = ctx;
    this.busy = false;
    this.again = false;
    this.charts = [];
    this.message = null;
  }

  async load() {
    const {main} = this.ctx;
    this.el = {
      head: h('div', {class: 'cards'}),
      msg: h('div', {class: 'flash', hidden: true}),
      chart: h('canvas', {id: 'progress', class: 'chart'}),
      legend: h('div', {class: 'legend'}),
      smalls: h('div', {class: 'smalls'}),
      lists: h('div', {class: 'cards two'}),
      tip: document.getElementById('tooltip'),
    };
    fill(
      main,
      this.el.msg,
      this.el.head,
      h('section', {class: 'card wide'}, h('h2', {id: 'progress-title'}, 'Progress'), this.el.legend, this.el.chart),
      this.el.smalls,
      this.el.lists,
    );
    const go = (p) => this.ctx.app.navigate(nodePage(this.ctx.key, p.id));
    this.main = new Chart(this.el.chart, {height: 380, labels: true, best: true, onClick: go, tooltip: this.el.tip});
    await this.refresh();
  }

  onUpdate() {
    this.refresh();
  }

  destroy() {
    this.charts.forEach((c) => c.destroy());
    if (this.main) this.main.destroy();
    this.el.tip.hidden = true;
    this.dead = true;
  }

  async refresh() {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      const [o, p] = await Promise.all([
        getJSON(api(this.ctx.key, 'overview')),
        getJSON(api(this.ctx.key, 'progress')),
      ]);
      if (this.dead) return;
      this.render(o, p);
      this.ctx.main.dataset.ready = String(o.version);
    } catch (e) {
      this.flash(e.message, true);
    } finally {
      this.busy = false;
      if (this.again && !this.dead) {
        this.again = false;
        this.refresh();
      }
    }
  }

  flash(text, bad) {
    const m = this.el.msg;
    m.hidden = !text;
    m.className = 'flash ' + (bad ? 'bad' : 'good');
    m.textContent = text || '';
  }

  async control(path, body, what) {
    this.flash(`${what}…`);
    try {
      const r = await postJSON(api(this.ctx.key, path), body);
      this.flash(r.message || 'done');
    } catch (e) {
      this.flash(e.message, true);
    }
    this.refresh();
  }

  render(o, p) {
    const key = this.ctx.key;
    const link = (n) => (n ? h('a', {href: nodePage(key, n.id), 'data-nav': true}, n.id) : '–');
    const ctl = o.control.enabled && o.control.authorized;
    const b = o.budget;

    const statusCard = card(
      'Run',
      h('div', {class: 'big'}, pill(o.status, o.status_text)),
      kv([
        ['workdir', h('span', {class: 'mono'}, o.workdir)],
        ['engine', o.pid ? `pid ${o.pid}${o.host ? ' on ' + o.host : ''}` : null],
        ['heartbeat', o.heartbeat_at ? clock(o.heartbeat_at) : null],
        ['planner', o.planner],
        ['executor', o.executor],
        ['stopped because', o.stop_reason],
      ]),
      ctl && o.status === 'running'
        ? h('button', {class: 'danger', id: 'stop-button', onclick: () => this.control('stop', {}, 'stopping the engine')}, 'Stop the engine')
        : null,
      o.control.enabled && !o.control.authorized
        ? h('p', {class: 'muted small'}, 'Control is on, but this page was not opened with the token: use the URL printed at start.')
        : null,
    );
    const bestCard = card(
      `Best ${o.metric} (${o.direction})`,
      h('div', {class: 'big', id: 'best-value'}, o.best ? fmt(o.best.value) : '–'),
      kv([
        ['node', o.best ? [link(o.best), ' ', o.best.name] : null],
        ['vs baseline', o.change_pct !== null && o.change_pct !== undefined ? h('span', {class: o.change_pct >= 0 === (o.direction === 'maximize') ? 'good' : 'bad'}, pct(o.change_pct)) : null],
        ['runs', o.best && o.best.spread ? `± ${fmt(o.best.spread.stdev)} over ${o.best.spread.n} runs (${fmt(o.best.spread.min)} … ${fmt(o.best.spread.max)})` : null],
        ['baseline', o.baseline ? [fmt(o.baseline.value), o.baseline.spread ? ` ± ${fmt(o.baseline.spread.stdev)} (n=${o.baseline.spread.n})` : '', ' (', link(o.baseline), ')'] : null],
        ['noise floor', o.noise_floor ? `± ${(o.noise_floor.relative * 100).toFixed(1)} % per run` : null],
      ]),
    );
    const c = o.counts;
    const countsCard = card(
      'Experiments',
      h('div', {class: 'big'}, String(c.total)),
      h(
        'div',
        {class: 'counts'},
        [
          ['completed', c.completed, 'completed'],
          ['improved', c.improved, 'improved'],
          ['failed', c.failed, 'failed'],
          ['running', c.running, 'running'],
          ['queued', c.queued, 'queued'],
        ].map(([label, n, cls]) => h('span', {class: 'count st-' + cls, 'data-count': label}, h('b', {}, String(n)), ' ', label)),
      ),
    );
    const budgetCard = card(
      'Budget',
      kv([
        ['experiments', used(b.experiments_started, b.max_experiments, String)],
        ['patience', used(b.plateau, b.patience, String)],
        ['time', used(b.time_used_s, b.time_budget_s, secs)],
        ['concurrency', b.max_concurrency],
        ['planner rounds', b.planner_rounds],
        ['agent cost', b.agent_cost_usd !== null && b.agent_cost_usd !== undefined ? used(b.agent_cost_usd, b.agent_cost_limit_usd, (v) => '$' + v.toFixed(2)) : null],
        ['agent calls', b.agent_calls],
      ]),
    );
    fill(this.el.head, statusCard, bestCard, countsCard, budgetCard);

    // Charts.
    document.getElementById('progress-title').textContent =
      `Progress: ${o.metric} per experiment, in completion order (${p.points.length} finished)`;
    const pal = p.palette;
    fill(
      this.el.legend,
      h('span', {class: 'dot', style: `background:${pal.improved}`}), 'improved ',
      h('span', {class: 'dot', style: `background:${pal.completed}`}), 'no improvement ',
      h('span', {class: 'cross', style: `color:${pal.failed}`}, '✕'), ' failed ',
      h('span', {class: 'line', style: `background:${pal.best_line}`}), 'best so far',
    );
    this.main.setData(p.points, pal, p.metric);
    window.__ar.progress = p;
    if (this.charts.length !== p.others.length) {
      this.charts.forEach((ch) => ch.destroy());
      fill(this.el.smalls);
      this.charts = p.others.map(([m]) => {
        const canvas = h('canvas', {class: 'chart', 'data-metric': m});
        this.el.smalls.append(h('section', {class: 'card'}, h('h2', {}, m), canvas));
        return new Chart(canvas, {
          height: 170,
          labels: false,
          best: false,
          onClick: (pt) => this.ctx.app.navigate(nodePage(key, pt.id)),
          tooltip: this.el.tip,
        });
      });
    }
    p.others.forEach(([m, vals], k) => {
      const pts = p.points.map((pt, i) => ({id: pt.id, name: pt.name, v: vals[i], failed: pt.failed, improved: false}));
      this.charts[k].setData(pts, pal, m);
    });

    // Lists.
    const running = o.running.length
      ? h(
          'table',
          {class: 'grid', id: 'running'},
          h('tbody', {}, o.running.map((r) => h('tr', {}, h('td', {}, link(r)), h('td', {}, r.name), h('td', {}, pill(r.phase)), h('td', {class: 'mono'}, r.job_id || ''), h('td', {}, r.attempt > 1 ? `attempt ${r.attempt}` : '')))),
        )
      : h('p', {class: 'muted'}, 'Nothing is running.');
    const queueRows = o.queue.map((q, i) =>
      h(
        'tr',
        {'data-id': q.id},
        h('td', {class: 'num muted'}, String(i + 1)),
        h('td', {}, link(q)),
        h('td', {}, q.name || ''),
        h('td', {class: 'num'}, fmt(q.priority)),
        ctl
          ? h(
              'td',
              {class: 'actions'},
              i > 0
                ? h('button', {class: 'bump', title: 'Give it the lowest priority so it runs next', onclick: () => this.control('queue/bump', {id: q.id, priority: o.queue[0].priority - 1}, `moving ${q.id} to the front`)}, 'Run next')
                : null,
              h('button', {class: 'drop', title: 'Remove it from the queue', onclick: () => { if (confirm(`Drop ${q.id} from the queue?`)) this.control('queue/drop', {id: q.id}, `dropping ${q.id}`); }}, 'Drop'),
            )
          : null,
      ),
    );
    const queue = o.queue_error
      ? h('p', {class: 'error'}, o.queue_error)
      : o.queue.length
        ? h('table', {class: 'grid', id: 'queue'}, h('tbody', {}, queueRows))
        : h('p', {class: 'muted'}, 'The queue is empty.');
    const recent = o.recent.length
      ? h(
          'table',
          {class: 'grid', id: 'recent'},
          h('tbody', {}, o.recent.map((r) => h('tr', {}, h('td', {}, link(r)), h('td', {}, r.name), h('td', {}, pill(r.status)), h('td', {class: 'num ' + (r.improved ? 'good' : '')}, r.status === 'failed' ? elide(r.failure, 60) : fmt(r.value) + (r.improved ? ' ★' : ''))))),
        )
      : h('p', {class: 'muted'}, 'No result yet.');
    const events = o.events.length
      ? h('ul', {class: 'events'}, o.events.slice().reverse().map((e) => h('li', {}, h('span', {class: 'muted mono'}, clock(e.ts)), ' ', eventText(e))))
      : h('p', {class: 'muted'}, 'No events yet.');
    fill(
      this.el.lists,
      card(`Running (${o.running.length})`, running),
      card(`Queue (${o.queue_total})`, queue, o.queue_total > o.queue.length ? h('p', {class: 'muted small'}, `and ${o.queue_total - o.queue.length} more`) : null),
      card('Latest results', recent),
      card('Activity', events),
      o.warnings_total
        ? card(
            `Warnings (${o.warnings_total})`,
            h('ul', {class: 'warnings'}, o.warnings.map((w) => h('li', {}, w))),
          )
        : null,
    );
  }
}
