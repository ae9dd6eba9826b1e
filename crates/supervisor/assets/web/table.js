// The experiments table: one row per node, one column per metric and per parameter. Sorting,
// filtering and paging happen on the server (10,000 nodes stay fast); the filter lives in the
// page address, so it survives a reload and the CSV link downloads exactly what is shown.

import {h, fill, fmt, secs, val, elide, getJSON, api, nodePage, pill} from './util.js';

const STATUSES = ['queued', 'running', 'completed', 'improved', 'failed'];

export class TablePage {
  constructor(ctx) {
    this.ctx = ctx;
    this.busy = false;
    this.again = false;
    this.params = new URLSearchParams(location.search);
    this.columns = null;
    this.typing = null;
  }

  q(name, dflt) {
    const v = this.params.get(name);
    return v === null ? dflt : v;
  }

  setParam(name, value, keepOffset) {
    if (value === null || value === undefined || value === '') this.params.delete(name);
    else this.params.set(name, value);
    if (!keepOffset) this.params.delete('offset');
    const qs = this.params.toString();
    history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
    this.refresh();
  }

  async load() {
    const search = h('input', {
      type: 'search',
      id: 'filter-text',
      placeholder: 'Filter: words in id, name, hypothesis, params, failure…',
      value: this.q('q', ''),
      oninput: (e) => {
        clearTimeout(this.typing);
        this.typing = setTimeout(() => this.setParam('q', e.target.value.trim()), 250);
      },
    });
    this.el = {
      search,
      chips: h('div', {class: 'chips', id: 'status-filter'}),
      ranges: h('div', {class: 'ranges', id: 'param-ranges'}),
      info: h('span', {class: 'muted', id: 'table-info'}),
      pager: h('span', {class: 'pager'}),
      csv: h('a', {class: 'button', id: 'csv-link', download: ''}, 'Download CSV'),
      table: h('table', {class: 'grid nodes', id: 'nodes'}),
      error: h('p', {class: 'error', hidden: true}),
    };
    fill(
      this.ctx.main,
      h('section', {class: 'card wide filters'}, h('div', {class: 'row'}, search, this.el.chips), this.el.ranges, h('div', {class: 'row'}, this.el.info, this.el.pager, this.el.csv)),
      this.el.error,
      h('div', {class: 'scroll'}, this.el.table),
    );
    this.renderChips();
    await this.refresh();
  }

  onUpdate() {
    this.refresh();
  }

  destroy() {
    this.dead = true;
  }

  renderChips() {
    const on = new Set((this.q('status', '') || '').split(',').filter(Boolean));
    const chip = (s) =>
      h(
        'button',
        {
          class: 'chip st-' + s + (on.has(s) ? ' on' : ''),
          'data-status': s,
          onclick: () => {
            if (on.has(s)) on.delete(s);
            else on.add(s);
            this.setParam('status', [...on].join(','));
            this.renderChips();
          },
        },
        s,
      );
    fill(this.el.chips, STATUSES.map(chip));
  }

  renderRanges(names) {
    if (this.rangeNames === names.join('\u0000')) return;
    this.rangeNames = names.join('\u0000');
    const input = (kind, p) =>
      h('input', {
        type: 'number',
        step: 'any',
        class: 'range',
        name: `${kind}.${p}`,
        placeholder: kind,
        value: this.q(`${kind}.${p}`, ''),
        onchange: (e) => this.setParam(`${kind}.${p}`, e.target.value),
      });
    fill(
      this.el.ranges,
      names.length ? h('span', {class: 'muted'}, 'Parameter ranges:') : null,
      names.map((p) => h('label', {class: 'range-box'}, h('span', {}, p), input('min', p), '–', input('max', p))),
    );
  }

  async refresh() {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    const qs = new URLSearchParams(this.params);
    if (!qs.has('limit')) qs.set('limit', '50');
    try {
      const page = await getJSON(api(this.ctx.key, 'nodes?' + qs.toString()));
      if (this.dead) return;
      this.el.error.hidden = true;
      this.render(page);
      const csvq = new URLSearchParams(this.params);
      csvq.delete('offset');
      csvq.delete('limit');
      this.el.csv.href = api(this.ctx.key, 'csv?' + csvq.toString());
      this.ctx.main.dataset.ready = String(page.version);
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

  render(page) {
    const key = this.ctx.key;
    this.renderRanges(page.params);
    const sort = this.q('sort', 'id');
    const desc = this.q('desc', '') === '1';
    const cols = [
      ['id', 'id', (r) => h('a', {href: nodePage(key, r.id), 'data-nav': true}, r.id)],
      ['name', 'name', (r) => r.name],
      ['status', 'status', (r) => pill(r.status)],
      ['value', page.metric, (r) => h('span', {
        class: r.improved ? 'good' : '',
        title: r.spread ? `${r.spread.n} runs: ${fmt(r.spread.min)} … ${fmt(r.spread.max)}` + (r.unconfirmed ? '; not confirmed by re-runs' : '') : (r.unconfirmed ? 'not confirmed by re-runs' : null),
      }, fmt(r.value) + (r.spread ? ` ± ${fmt(r.spread.stdev)} (n=${r.spread.n})` : '') + (r.unconfirmed ? ' ?' : '') + (r.best ? ' ★' : ''))],
      ...page.metrics.map((m) => ['m:' + m, m, (r) => fmt(r.metrics[m])]),
      ['duration', 'duration', (r) => (r.duration_s === null ? '' : secs(r.duration_s))],
      ['finished', 'finished #', (r) => (r.finished === null ? '' : String(r.finished + 1))],
      ...page.params.map((p) => ['p:' + p, p, (r) => val(r.params[p])]),
      ['parent', 'parent', (r) => (r.parent ? h('a', {href: nodePage(key, r.parent), 'data-nav': true}, r.parent) : '')],
      [null, 'hypothesis / failure', (r) => h('span', {title: r.failure || r.hypothesis}, elide(r.failure || r.hypothesis, 80))],
    ];
    const head = h(
      'tr',
      {},
      cols.map(([k, label]) =>
        h(
          'th',
          {
            class: k ? 'sortable' + (k === sort ? ' sorted' : '') : null,
            'data-sort': k,
            onclick: k
              ? () => {
                  if (sort === k) this.params.set('desc', desc ? '0' : '1');
                  else {
                    this.params.set('sort', k);
                    this.params.delete('desc');
                  }
                  this.setParam('sort', k);
                }
              : null,
          },
          label,
          k === sort ? (desc ? ' ▼' : ' ▲') : '',
        ),
      ),
    );
    const rows = page.rows.map((r) =>
      h(
        'tr',
        {'data-id': r.id, class: (r.best ? 'best ' : '') + 'st-' + r.status},
        cols.map(([k, , f]) => h('td', {class: k && (k === 'value' || k.startsWith('m:') || k === 'duration' || k === 'finished') ? 'num' : null}, f(r))),
      ),
    );
    fill(this.el.table, h('thead', {}, head), h('tbody', {}, rows));
    const first = page.matched ? page.offset + 1 : 0;
    const last = Math.min(page.offset + page.limit, page.matched);
    this.el.info.textContent = `${first}–${last} of ${page.matched} matching (${page.total} experiments)`;
    const pages = Math.max(1, Math.ceil(page.matched / page.limit));
    const cur = Math.floor(page.offset / page.limit) + 1;
    const go = (p) => this.setParam('offset', String((p - 1) * page.limit), true);
    const size = h(
      'select',
      {onchange: (e) => this.setParam('limit', e.target.value), title: 'rows per page'},
      [25, 50, 100, 200].map((n) => h('option', {value: n, selected: n === page.limit}, `${n} / page`)),
    );
    fill(
      this.el.pager,
      h('button', {disabled: cur <= 1, onclick: () => go(1)}, '«'),
      h('button', {disabled: cur <= 1, onclick: () => go(cur - 1), id: 'prev-page'}, '‹'),
      h('span', {}, ` page ${cur} of ${pages} `),
      h('button', {disabled: cur >= pages, onclick: () => go(cur + 1), id: 'next-page'}, '›'),
      h('button', {disabled: cur >= pages, onclick: () => go(pages)}, '»'),
      size,
    );
  }
}
