// A hand-drawn canvas chart of one metric per finished experiment, in completion order, as in
// progress.png: improvements are green dots named by their experiment, the running best is a
// step line, other results are grey dots, failures are red crosses along the bottom. Hovering
// shows the experiment; clicking opens its page. Canvas (not SVG) so 10,000 points stay fast.

const FONT = '12px "DejaVu Sans", sans-serif';

/** Round tick values covering [lo, hi]. */
function ticks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function tickText(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(6)));
}

export class Chart {
  /**
   * @param canvas the canvas element
   * @param opts {height, labels (name improvements), onClick(point), tooltip (element), title}
   */
  constructor(canvas, opts) {
    this.canvas = canvas;
    this.opts = opts;
    this.points = [];
    this.hover = null;
    this.screen = [];
    canvas.style.height = opts.height + 'px';
    canvas.addEventListener('mousemove', (e) => this.onMove(e));
    canvas.addEventListener('mouseleave', () => this.setHover(null));
    canvas.addEventListener('click', () => {
      if (this.hover && opts.onClick) opts.onClick(this.hover.p);
    });
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(canvas);
  }

  /** points: [{id, name, v, failed, improved, best}], palette: colours of the views. */
  setData(points, palette, metric) {
    this.points = points;
    this.palette = palette;
    this.metric = metric;
    this.canvas.dataset.points = String(points.length);
    this.canvas.dataset.last = points.length ? points[points.length - 1].id : '';
    this.draw();
  }

  destroy() {
    this.resize.disconnect();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth;
    const H = this.opts.height;
    if (!W) return;
    c.width = Math.round(W * dpr);
    c.height = Math.round(H * dpr);
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    g.font = FONT;
    const pal = this.palette || {};
    const pts = this.points;
    const L = 70, R = 18, T = 14, B = 30;
    const pw = W - L - R, ph = H - T - B;
    const vals = pts.filter((p) => p.v !== null && p.v !== undefined).map((p) => p.v);
    const anyFail = pts.some((p) => p.failed);
    let lo = Math.min(...vals), hi = Math.max(...vals);
    if (!vals.length) {
      lo = 0;
      hi = 1;
    }
    if (hi - lo < 1e-12 * Math.max(Math.abs(hi), 1e-12)) {
      const pad = lo === 0 ? 1 : Math.abs(lo) * 0.05;
      lo -= pad;
      hi += pad;
    }
    const span = hi - lo;
    const y0 = lo - span * (anyFail ? 0.12 : 0.05);
    const y1 = hi + span * 0.1;
    const n = Math.max(pts.length, 1);
    const X = (i) => L + ((i + 0.5) / n) * pw;
    const Y = (v) => T + ph - ((v - y0) / (y1 - y0)) * ph;
    const failY = T + ph - 8;

    // Grid and axes.
    g.strokeStyle = '#e6e6e6';
    g.fillStyle = '#555';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (const t of ticks(lo, hi, Math.max(3, Math.floor(ph / 50)))) {
      const y = Math.round(Y(t)) + 0.5;
      g.beginPath();
      g.moveTo(L, y);
      g.lineTo(L + pw, y);
      g.stroke();
      g.fillText(tickText(t), L - 8, y);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (const t of pts.length ? ticks(1, n, Math.max(2, Math.floor(pw / 90))) : []) {
      if (t !== Math.floor(t)) continue;
      g.fillText(String(t), X(t - 1), T + ph + 8);
    }
    g.strokeStyle = '#999';
    g.strokeRect(L + 0.5, T + 0.5, pw, ph);
    if (!pts.length) {
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillStyle = '#888';
      g.fillText('no finished experiment yet', L + pw / 2, T + ph / 2);
      this.screen = [];
      return;
    }

    // Running best: a step line from the first improvement on.
    if (this.opts.best) {
      g.strokeStyle = pal.best_line || '#145a1e';
      g.lineWidth = 2;
      g.beginPath();
      let started = false;
      let prev = null;
      pts.forEach((p, i) => {
        if (p.best === null || p.best === undefined) return;
        const x = X(i), y = Y(p.best);
        if (!started) {
          g.moveTo(x, y);
          started = true;
        } else {
          if (prev !== p.best) g.lineTo(x, Y(prev));
          g.lineTo(x, y);
        }
        prev = p.best;
      });
      if (started) g.lineTo(L + pw, Y(prev));
      g.stroke();
    }

    // Points: others first, improvements on top.
    const r = pts.length > 2000 ? 1.6 : pts.length > 300 ? 2.4 : 3.2;
    this.screen = new Array(pts.length);
    g.fillStyle = pal.completed || '#b2b2b2';
    pts.forEach((p, i) => {
      if (p.failed || p.v === null || p.v === undefined) return;
      const x = X(i), y = Y(p.v);
      this.screen[i] = [x, y];
      if (p.improved && this.opts.best) return;
      g.beginPath();
      g.arc(x, y, r, 0, Math.PI * 2);
      g.fill();
    });
    g.strokeStyle = pal.failed || '#d62728';
    g.lineWidth = 1.6;
    pts.forEach((p, i) => {
      if (!p.failed) return;
      const x = X(i);
      this.screen[i] = [x, failY];
      const s = 3.5;
      g.beginPath();
      g.moveTo(x - s, failY - s);
      g.lineTo(x + s, failY + s);
      g.moveTo(x + s, failY - s);
      g.lineTo(x - s, failY + s);
      g.stroke();
    });
    if (this.opts.best) {
      const boxes = [];
      g.textAlign = 'left';
      g.textBaseline = 'bottom';
      pts.forEach((p, i) => {
        if (!p.improved || p.v === null || p.v === undefined) return;
        const [x, y] = this.screen[i];
        g.fillStyle = pal.improved || '#2ca02c';
        g.strokeStyle = '#1b5e20';
        g.lineWidth = 1;
        g.beginPath();
        g.arc(x, y, 4.5, 0, Math.PI * 2);
        g.fill();
        g.stroke();
        if (!this.opts.labels) return;
        const text = p.name.length > 24 ? p.name.slice(0, 23) + '…' : p.name;
        const w = g.measureText(text).width;
        let bx = x + 6;
        if (bx + w > L + pw) bx = x - 6 - w;
        const box = [bx, y - 20, bx + w, y - 6];
        if (box[1] < T) return;
        if (boxes.some((b) => !(box[2] < b[0] || box[0] > b[2] || box[3] < b[1] || box[1] > b[3]))) return;
        boxes.push(box);
        g.fillStyle = '#0a4614';
        g.fillText(text, bx, y - 6);
      });
    }
    if (this.hover) {
      const [x, y] = this.hover.xy;
      g.strokeStyle = '#222';
      g.lineWidth = 1.5;
      g.beginPath();
      g.arc(x, y, 7, 0, Math.PI * 2);
      g.stroke();
    }
  }

  onMove(e) {
    const rect = this.canvas.getBoundingClientRect();
    const mx = e.clientX - rect.left, my = e.clientY - rect.top;
    let best = null, bd = 12 * 12;
    this.screen.forEach((xy, i) => {
      if (!xy) return;
      const d = (xy[0] - mx) ** 2 + (xy[1] - my) ** 2;
      if (d < bd) {
        bd = d;
        best = {i, xy, p: this.points[i]};
      }
    });
    this.setHover(best, e);
  }

  setHover(hit, e) {
    const tip = this.opts.tooltip;
    const same = (hit && hit.i) === (this.hover && this.hover.i);
    this.hover = hit;
    this.canvas.style.cursor = hit ? 'pointer' : 'default';
    if (!same) this.draw();
    if (!tip) return;
    if (!hit) {
      tip.hidden = true;
      return;
    }
    const p = hit.p;
    const lines = [
      `#${hit.i + 1} ${p.id}`,
      p.name,
      p.failed ? 'failed' : `${this.metric} = ${p.v}` + (p.improved ? '  ★ improved' : ''),
    ];
    tip.replaceChildren(...lines.map((l) => Object.assign(document.createElement('div'), {textContent: l})));
    tip.hidden = false;
    tip.style.left = e.pageX + 14 + 'px';
    tip.style.top = e.pageY + 10 + 'px';
  }
}
