// One experiment: parameters, command, hypothesis, metrics, timings, attempts, failure, the
// tails of stdout.log and stderr.log (followed live while the job runs), and, for experiments
// that change code, the diff against the parent and against the baseline.

import {h, fill, fmt, secs, val, getJSON, api, nodePage, pill} from './util.js';

function section(title, ...body) {
  return h('section', {class: 'card wide'}, h('h2', {}, title), ...body);
}

function kv(rows) {
  return h(
    'dl',
    {class: 'kv'},
    rows.filter((r) => r && r[1] !== null && r[1] !== undefined && r[1] !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
  );
}

/**
 * A log pane: the last lines of one log of the node, then what is appended, asked for every
 * 700 ms while the job may still write (plain requests: a browser keeps few connections).
 */
class LogPane {
  constructor(key, id, stream) {
    this.url = api(key, `nodes/${encodeURIComponent(id)}/log/${stream}`);
    this.pre = h('pre', {class: 'log', id: `log-${stream}`, 'data-state': 'loading'}, '');
    this.state = h('span', {class: 'muted small'}, 'loading…');
    this.el = h('div', {class: 'log-pane'}, h('div', {class: 'row'}, h('h3', {}, `${stream}.log`), this.state), this.pre);
    this.offset = null;
    this.live = true;
    this.closed = false;
    this.busy = false;
    this.poll();
  }

  /** Keeps asking while `live`; a pane that stops being live asks once more (the last lines). */
  setLive(live) {
    const was = this.live;
    this.live = live;
    if ((live && !was) || (!live && was)) this.poll();
  }

  async poll() {
    if (this.busy || this.closed) return;
    this.busy = true;
    clearTimeout(this.timer);
    try {
      const r = await getJSON(this.offset === null ? this.url : `${this.url}?offset=${this.offset}`);
      if (this.closed) return;
      const stick = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 8;
      if (r.state === 'missing') {
        this.pre.textContent = '';
        this.offset = null;
        this.pre.dataset.state = 'missing';
        this.state.textContent = 'not written yet';
      } else if (r.state === 'error') {
        this.pre.dataset.state = 'error';
        this.state.textContent = r.error;
      } else {
        if (r.reset) this.pre.textContent = r.text;
        else if (r.text) this.pre.append(r.text);
        // Keep the pane bounded: at most 400 KB of text.
        if (this.pre.textContent.length > 400000) this.pre.textContent = this.pre.textContent.slice(-300000);
        this.offset = r.offset;
        this.pre.dataset.state = this.live ? 'live' : 'done';
        this.state.textContent = this.live ? 'last lines, following' : 'last lines';
        if (stick || r.reset) this.pre.scrollTop = this.pre.scrollHeight;
      }
    } catch (e) {
      this.state.textContent = e.message;
    } finally {
      this.busy = false;
      if (this.live && !this.closed) this.timer = setTimeout(() => this.poll(), 700);
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
  }
}

export class NodePage {
  constructor(ctx, id) {
    this.ctx = ctx;
    this.id = id;
    this.busy = false;
    this.again = false;
    this.logs = [];
    this.diffShown = null;
  }

  async load() {
    this.el = {
      head: h('div', {}),
      body: h('div', {}),
      logs: h('div', {class: 'logs'}),
      diff: h('div', {}),
      error: h('p', {class: 'error', hidden: true}),
    };
    fill(this.ctx.main, this.el.error, this.el.head, this.el.body, section('Logs', this.el.logs), this.el.diff);
    this.logs = ['stdout', 'stderr'].map((s) => new LogPane(this.ctx.key, this.id, s));
    fill(this.el.logs, this.logs.map((l) => l.el));
    await this.refresh();
  }

  onUpdate() {
    this.refresh();
  }

  destroy() {
    this.dead = true;
    this.logs.forEach((l) => l.close());
  }

  async refresh() {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      const d = await getJSON(api(this.ctx.key, 'nodes/' + encodeURIComponent(this.id)));
      if (this.dead) return;
      this.el.error.hidden = true;
      this.render(d);
      this.ctx.main.dataset.ready = String(d.version);
    } catch (e) {
      this.el.error.hidden = false;
      this.el.error.textContent = e.message;
    } finally {
      this.busy = false;
      if (this.again && !this.dead) {
        this.again = false;
        this.refresh();
      }
    }
  }

  render(d) {
    const key = this.ctx.key;
    const link = (n) => h('a', {href: nodePage(key, n.id), 'data-nav': true}, n.id);
    const r = d.result;
    const f = d.failure;
    const j = d.job;
    fill(
      this.el.head,
      h(
        'div',
        {class: 'node-head'},
        h('h1', {}, d.name, ' ', h('span', {class: 'muted mono'}, d.id)),
        pill(d.status),
        d.best ? h('span', {class: 'badge best'}, '★ best') : null,
        d.baseline ? h('span', {class: 'badge'}, 'baseline') : null,
        d.value !== null ? h('span', {class: 'big-inline', id: 'node-value'}, `${d.metric} = ${fmt(d.value)}`) : null,
      ),
      h(
        'p',
        {class: 'path'},
        d.path.map((p, i) => [i ? ' → ' : '', p.id === d.id ? h('b', {}, p.name) : h('a', {href: nodePage(key, p.id), 'data-nav': true}, p.name)]),
      ),
    );
    const params = Object.entries(d.params);
    const metrics = r ? Object.entries(r.metrics) : [];
    fill(
      this.el.body,
      h(
        'div',
        {class: 'cards two'},
        h(
          'section',
          {class: 'card'},
          h('h2', {}, 'Experiment'),
          kv([
            ['hypothesis', d.hypothesis],
            ['change', d.change],
            ['code change asked', d.changes],
            ['parent', d.parent ? [link(d.parent), ' ', d.parent.name] : '(root)'],
            ['children', d.children.length ? d.children.map((c, i) => [i ? ', ' : '', link(c)]) : null],
            ['priority', d.priority !== null ? fmt(d.priority) : null],
          ]),
          params.length
            ? h('table', {class: 'grid params', id: 'params'}, h('tbody', {}, params.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {class: 'mono'}, val(v))))))
            : null,
          d.command ? [h('h3', {}, 'command'), h('pre', {class: 'cmd'}, d.command)] : null,
          d.command_sh && d.command_sh.trim() !== (d.command || '').trim() ? [h('h3', {}, 'command.sh (what ran)'), h('pre', {class: 'cmd'}, d.command_sh)] : null,
        ),
        h(
          'section',
          {class: 'card'},
          h('h2', {}, f ? 'Failure' : 'Result'),
          f
            ? kv([
                ['kind', h('span', {class: 'bad'}, f.kind)],
                ['phase', f.phase],
                ['message', h('span', {class: 'pre-wrap'}, f.message)],
                ['retryable', f.retryable ? 'yes' : 'no'],
                ['details', f.details && Object.keys(f.details).length ? h('pre', {class: 'cmd'}, JSON.stringify(f.details, null, 2)) : null],
              ])
            : null,
          r
            ? [
                kv([
                  ['improved', r.improved ? h('span', {class: 'good'}, 'yes ★') : 'no'],
                  ['exit code', r.exit_code],
                  ['analysis', r.analysis],
                ]),
                metrics.length
                  ? h('table', {class: 'grid', id: 'metrics'}, h('tbody', {}, metrics.map(([k, v]) => h('tr', {class: k === d.metric ? 'primary' : ''}, h('th', {}, k), h('td', {class: 'num'}, fmt(v))))))
                  : null,
              ]
            : !f
              ? h('p', {class: 'muted'}, d.active ? 'Running: the result appears here when the job ends.' : 'No result yet.')
              : null,
          h('h3', {}, 'Timings and job'),
          kv([
            ['created', d.created_at],
            ['job started', j ? j.started_at : null],
            ['finished', d.finished_at],
            ['duration', r ? secs(r.duration_s) : null],
            ['job', j ? `${j.job_id} (${j.executor}) on ${j.host}` : null],
            ['attempts', j ? String(j.attempt) + (j.attempt > 1 ? ' (relaunched after its job was lost)' : '') : null],
            ['exit_code file', d.exit_code_file],
          ]),
        ),
      ),
      d.analysis_md ? section('analysis.md', h('pre', {class: 'cmd'}, d.analysis_md)) : null,
    );
    this.renderDiff(d);
    const live = d.active || d.status === 'queued';
    this.logs.forEach((l) => l.setLive(live));
  }

  async renderDiff(d) {
    if (!d.commits) {
      fill(this.el.diff);
      this.diffShown = null;
      return;
    }
    const sig = JSON.stringify(d.commits);
    if (this.diffShown === sig) return;
    this.diffShown = sig;
    const pane = h('pre', {class: 'diff', id: 'diff'}, 'loading…');
    const show = async (against) => {
      pane.textContent = 'loading…';
      try {
        const r = await getJSON(api(this.ctx.key, `nodes/${encodeURIComponent(d.id)}/diff?against=${against}`));
        pane.replaceChildren(
          ...r.text.split('\n').map((line) => {
            const cls = line.startsWith('+') && !line.startsWith('+++') ? 'add' : line.startsWith('-') && !line.startsWith('---') ? 'del' : line.startsWith('@@') ? 'hunk' : '';
            return h('span', {class: cls}, line + '\n');
          }),
          r.truncated ? h('span', {class: 'muted'}, '… (cut at 1 MB)') : '',
        );
      } catch (e) {
        pane.textContent = e.message;
      }
    };
    const tabs = [];
    if (d.commits.parent) tabs.push(['parent', 'against its parent']);
    if (d.commits.baseline) tabs.push(['baseline', 'against the baseline']);
    fill(
      this.el.diff,
      section(
        `Code diff (commit ${d.commits.node.slice(0, 12)})`,
        h('div', {class: 'row'}, tabs.map(([k, label]) => h('button', {onclick: () => show(k)}, label))),
        pane,
      ),
    );
    if (tabs.length) show(tabs[0][0]);
    else pane.textContent = 'no commit to compare with';
  }
}
