// The hypothesis tree, laid out by the server with the same tidy layout as
// hypothesis_tree.png and coloured the same way: green improved, grey completed, red failed,
// blue running, dashed white queued, the best node outlined in gold; edges are labelled with
// the change. Drag to pan, wheel (or the buttons) to zoom, click a node for its page.

import {h, svg, fill, fmt, elide, getJSON, api, nodePage} from './util.js';

const SLOT = 150;
const LEVEL = 96;
const BOX_W = 132;
const BOX_H = 42;

export class TreePage {
  constructor(ctx) {
    this.ctx = ctx;
    this.busy = false;
    this.again = false;
    this.view = null; // {x, y, k}
  }

  async load() {
    this.el = {
      info: h('span', {class: 'muted', id: 'tree-info'}),
      box: h('div', {class: 'tree-box', id: 'tree'}),
      error: h('p', {class: 'error', hidden: true}),
    };
    const zoom = (f) => () => this.zoomAt(f, this.el.box.clientWidth / 2, this.el.box.clientHeight / 2);
    fill(
      this.ctx.main,
      h(
        'section',
        {class: 'card wide'},
        h(
          'div',
          {class: 'row'},
          h('h2', {}, 'Hypothesis tree'),
          this.el.info,
          h('span', {class: 'grow'}),
          h('button', {onclick: zoom(1.25), title: 'zoom in'}, '+'),
          h('button', {onclick: zoom(0.8), title: 'zoom out'}, '−'),
          h('button', {onclick: () => this.fit(), title: 'show all'}, 'Fit'),
        ),
        this.el.error,
        this.el.box,
      ),
    );
    this.el.box.style.height = Math.max(420, window.innerHeight - 190) + 'px';
    this.installPanZoom();
    await this.refresh();
  }

  onUpdate() {
    this.refresh();
  }

  destroy() {
    this.dead = true;
    this.abort.abort();
  }

  async refresh() {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      const t = await getJSON(api(this.ctx.key, 'tree'));
      if (this.dead) return;
      this.render(t);
      this.ctx.main.dataset.ready = String(t.version);
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

  render(t) {
    const key = this.ctx.key;
    const pal = t.palette;
    const n = t.nodes.length;
    const counts = {};
    t.nodes.forEach((nd) => (counts[nd.status] = (counts[nd.status] || 0) + 1));
    this.el.info.textContent = `${n} nodes · drag to pan, wheel to zoom, click a node to open it`;
    const maxDepth = t.nodes.reduce((m, nd) => Math.max(m, nd.depth), 0);
    this.size = {w: Math.max(1, t.width) * SLOT, h: (maxDepth + 1) * LEVEL};
    const cx = (nd) => nd.x * SLOT + SLOT / 2;
    const cy = (nd) => nd.depth * LEVEL + BOX_H / 2 + 10;
    const edges = svg('g', {class: 'edges'});
    const labels = svg('g', {class: 'edge-labels'});
    const nodes = svg('g', {class: 'nodes'});
    t.nodes.forEach((nd) => {
      if (nd.parent === null || nd.parent === undefined) return;
      const p = t.nodes[nd.parent];
      const x1 = cx(p), y1 = cy(p) + BOX_H / 2, x2 = cx(nd), y2 = cy(nd) - BOX_H / 2;
      const my = (y1 + y2) / 2;
      edges.append(svg('path', {d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`}));
      if (nd.change) {
        labels.append(svg('text', {x: x2, y: y2 - 7, 'text-anchor': 'middle'}, elide(nd.change, 22)));
      }
    });
    t.nodes.forEach((nd, i) => {
      const best = t.best === i;
      const queued = nd.status === 'queued';
      const x = cx(nd) - BOX_W / 2, y = cy(nd) - BOX_H / 2;
      const dark = nd.fill === pal.running || nd.fill === pal.failed || nd.fill === pal.improved;
      const g = svg(
        'g',
        {class: 'node' + (best ? ' best' : ''), 'data-id': nd.id, 'data-status': nd.status, transform: `translate(${x},${y})`},
        svg('title', {}, `${nd.id}\n${nd.name}\n${nd.status}${nd.value !== null ? `\n${t.metric} = ${nd.value}` : ''}${nd.change ? `\nchange: ${nd.change}` : ''}`),
        best ? svg('rect', {x: -4, y: -4, width: BOX_W + 8, height: BOX_H + 8, rx: 9, fill: 'none', stroke: pal.best, 'stroke-width': 5}) : null,
        svg('rect', {
          width: BOX_W,
          height: BOX_H,
          rx: 6,
          fill: nd.fill,
          stroke: queued ? '#5a5a5a' : '#333',
          'stroke-width': 1.2,
          'stroke-dasharray': queued ? '5 4' : null,
        }),
        svg('text', {x: BOX_W / 2, y: 17, 'text-anchor': 'middle', class: dark ? 'on-dark' : ''}, elide(nd.name, 19)),
        svg('text', {x: BOX_W / 2, y: 33, 'text-anchor': 'middle', class: 'value' + (dark ? ' on-dark' : '')}, nd.value !== null ? fmt(nd.value) : nd.status),
      );
      g.addEventListener('click', (e) => {
        if (this.dragged) return;
        e.stopPropagation();
        this.ctx.app.navigate(nodePage(key, nd.id));
      });
      nodes.append(g);
    });
    this.layer = svg('g', {class: 'viewport'}, edges, labels, nodes);
    this.svg = svg('svg', {class: 'tree', width: '100%', height: '100%'}, this.layer);
    fill(this.el.box, this.svg);
    if (!this.view) this.fit();
    else this.apply();
  }

  fit() {
    if (!this.size) return;
    const W = this.el.box.clientWidth || 800, H = this.el.box.clientHeight || 500;
    const k = Math.min(1.2, Math.min(W / (this.size.w + 40), H / (this.size.h + 40)));
    this.view = {k, x: (W - this.size.w * k) / 2, y: 20};
    this.apply();
  }

  apply() {
    if (!this.layer) return;
    const v = this.view;
    this.layer.setAttribute('transform', `translate(${v.x},${v.y}) scale(${v.k})`);
    this.svg.classList.toggle('far', v.k < 0.45);
  }

  zoomAt(f, px, py) {
    const v = this.view;
    const k = Math.min(4, Math.max(0.02, v.k * f));
    const r = k / v.k;
    this.view = {k, x: px - (px - v.x) * r, y: py - (py - v.y) * r};
    this.apply();
  }

  installPanZoom() {
    const box = this.el.box;
    this.abort = new AbortController();
    const signal = this.abort.signal;
    let start = null;
    box.addEventListener('pointerdown', (e) => {
      start = {x: e.clientX, y: e.clientY, vx: this.view ? this.view.x : 0, vy: this.view ? this.view.y : 0};
      this.dragged = false;
    });
    window.addEventListener('pointermove', (e) => {
      if (!start || !this.view) return;
      const dx = e.clientX - start.x, dy = e.clientY - start.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) {
        this.dragged = true;
        box.classList.add('dragging');
      }
      if (this.dragged) {
        this.view.x = start.vx + dx;
        this.view.y = start.vy + dy;
        this.apply();
      }
    }, {signal});
    window.addEventListener('pointerup', () => {
      start = null;
      box.classList.remove('dragging');
      setTimeout(() => (this.dragged = false), 0);
    }, {signal});
    box.addEventListener(
      'wheel',
      (e) => {
        e.preventDefault();
        const r = box.getBoundingClientRect();
        this.zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
      },
      {passive: false},
    );
  }
}
