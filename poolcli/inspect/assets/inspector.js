// poolcli inspector: draws the payload that poolcli computed with its engine, and looks values up.
// No number shown here is recomputed from pixels: pooled values, winners (max/min indices),
// routing gradients and divisors come from the payload; the script walks the plan's geometry
// (window, stride, dilation, pads) to find which cells a window reads. Only the median's middle
// cells are found here, by sorting the window's values, and the exact value beside an integer result
// (what pool writes, rounded) is worked out here from the taps, in float64.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("poolcli-data").textContent);
  const TYPES = {uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array, uint32: Uint32Array,
    int32: Int32Array, int64: BigInt64Array, uint64: BigUint64Array, float32: Float32Array, float64: Float64Array};
  const CELL_TEXT_PX = 34;  // a cell this many CSS pixels wide shows its value
  const api = {ready: false, state: {probe: null, outline: [], winners: [], routing: []}};
  window.poolInspector = api;

  async function decode(encoded) {
    if (!encoded) return null;
    const raw = Uint8Array.from(atob(encoded.data), (c) => c.charCodeAt(0));
    const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
    const planes = new Uint8Array(await new Response(stream).arrayBuffer());
    const type = TYPES[encoded.dtype], size = type.BYTES_PER_ELEMENT, count = planes.length / size;
    const bytes = new Uint8Array(planes.length);  // byte k of value i is at k * count + i
    for (let k = 0; k < size; k++) for (let i = 0; i < count; i++) bytes[i * size + k] = planes[k * count + i];
    const values = new type(bytes.buffer);
    if (type.BYTES_PER_ELEMENT === 8 && !encoded.dtype.startsWith("float")) {  // 64-bit integers: exact as BigInt
      return {values: Float64Array.from(values, Number), exact: values, dtype: encoded.dtype, shape: encoded.shape};
    }
    return {values, exact: null, dtype: encoded.dtype, shape: encoded.shape};
  }
  // The text of value i of a decoded array: exact for 64-bit integers (BigInt), else the shortest float text.
  function textAt(arr, i) {
    if (i === undefined) return undefined;
    return arr.exact ? arr.exact[i].toString() : fmt(arr.values[i], arr.dtype);
  }

  // ---------------------------------------------------------------- numbers as text
  function fmt(v, dtype) {
    if (Number.isNaN(v)) return "NaN";
    if (v === Infinity) return "+inf";
    if (v === -Infinity) return "-inf";
    if (dtype !== "float32") return String(v);
    for (let p = 1; p <= 9; p++) {  // the shortest text that reads back as the same float32
      const text = v.toPrecision(p);
      if (Math.fround(parseFloat(text)) === v) return String(parseFloat(text));
    }
    return String(v);
  }
  function short(v, dtype) {
    const text = fmt(v, dtype);
    if (text.length <= 6 || !Number.isFinite(v)) return text;
    return Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3 ? v.toExponential(1) : String(Number(v.toPrecision(4)));
  }

  // ---------------------------------------------------------------- the model
  const H = DATA.size[0], W = DATA.size[1];
  const SERIES = DATA.kind === "series";
  const E = DATA.exact;
  let input, panels;
  const view = {scale: 1, cx: W / 2, cy: H / 2, channel: 0, colour: DATA.colour,
    perChannel: Boolean(DATA.channelRanges), yZoom: 1, yCentre: 0.5};  // series: the value axis's zoom

  function inputIndex(c, y, x) {  // where cell (y, x) of channel c lies in the exact region's values
    if (y < E.y || y >= E.y + E.h || x < E.x || x >= E.x + E.w) return undefined;
    return (c * E.h + (y - E.y)) * E.w + (x - E.x);
  }
  function panelIndex(panel, c, oy, ox) {
    const R = panel.region;
    if (oy < R.y || oy >= R.y + R.h || ox < R.x || ox >= R.x + R.w) return undefined;
    return (c * R.h + (oy - R.y)) * R.w + (ox - R.x);
  }
  function inputValue(c, y, x) {
    const i = inputIndex(c, y, x);
    return i === undefined ? undefined : input.values[i];
  }
  function panelValue(panel, arr, c, oy, ox) {
    const i = panelIndex(panel, c, oy, ox);
    return i === undefined ? undefined : arr.values[i];
  }
  function axesOf(panel) {  // [rows, columns]; a series has one row
    if (panel.axes.length === 2) return panel.axes;
    return [{size: 1, window: 1, stride: 1, dilation: 1, padLo: 0, padHi: 0, out: 1, span: 1,
      divisors: panel.axes[0].divisors ? [1] : null, divisorFrom: 0, padBefore: null, padAfter: null}, panel.axes[0]];
  }
  function padSource(g, q) {  // the input cell that pad cell q copies (edge/reflect padding)
    return q < 0 ? g.padBefore[q + g.padLo] : g.padAfter[q - g.size];
  }

  // The taps of window o on one axis: position, and what lies there (input, pad copying a cell, zero pad, overhang).
  function axisTaps(g, o) {
    const taps = [];
    for (let j = 0; j < g.window; j++) {
      const q = o * g.stride - g.padLo + j * g.dilation;
      let kind = "in", source = q;
      if (q < 0 || q >= g.size) {
        if (q >= g.size + g.padHi) { kind = "overhang"; source = null; }
        else if (g.padBefore) { kind = "copy"; source = padSource(g, q); }
        else { kind = "pad"; source = null; }
      }
      taps.push({j, q, kind, source});
    }
    return taps;
  }

  function windowOf(index, oy, ox, c) {
    const panel = panels[index];
    const [gy, gx] = axesOf(panel);
    const rows = axisTaps(gy, oy), cols = axisTaps(gx, ox);
    const taps = [];
    for (const r of rows) {
      for (const q of cols) {
        const kind = r.kind === "overhang" || q.kind === "overhang" ? "overhang"
          : r.kind === "pad" || q.kind === "pad" ? "pad"
            : r.kind === "copy" || q.kind === "copy" ? "copy" : "in";
        const real = kind === "in" || kind === "copy";
        const sy = real ? r.source : null, sx = real ? q.source : null;
        const at = real ? inputIndex(c, sy, sx) : undefined;
        taps.push({y: r.q, x: q.q, kind, sy, sx, value: at === undefined ? undefined : input.values[at],
          exact: at === undefined || !input.exact ? undefined : input.exact[at], text: textAt(input, at)});
      }
    }
    const at = panelIndex(panel, c, oy, ox);
    const result = at === undefined ? undefined : panel.data.values[at], resultText = textAt(panel.data, at);
    let winners = [];
    if (panel.idx) {
      const flat = panelValue(panel, panel.idx, c, oy, ox);
      if (flat !== undefined) {
        const wy = Math.floor(flat / W), wx = flat % W;
        const first = taps.find((t) => t.sy === wy && t.sx === wx);  // the first tap in window order reading it
        winners = first ? [{y: first.y, x: first.x, sy: wy, sx: wx, flat}] : [];
      }
    } else if (panel.reducer === "median" && !Number.isNaN(result)) {
      winners = medianCells(panel, taps);
    }
    let divisor = null, divisorText = "";
    if (panel.divisor) {
      if (panel.divisorOverride !== null && panel.divisorOverride !== undefined) {
        divisor = panel.divisorOverride; divisorText = `divisor_override = ${divisor}`;
      } else {
        const cy = gy.divisors[oy - gy.divisorFrom], cx = gx.divisors[ox - gx.divisorFrom];  // the region's only
        if (cy !== undefined && cx !== undefined) {
          divisor = cy * cx;
          divisorText = panel.axes.length === 2 ? `divisor = ${cy} x ${cx} = ${divisor}` : `divisor = ${divisor}`;
          divisorText += panel.padMode !== "zeros" ? " (pad cells count: they are data)"
            : panel.countIncludePad ? " (zero padding counts)" : " (padding not counted)";
          if (panel.nanPolicy === "omit") divisorText += "; NaN cells leave it";
        }
      }
    }
    return {panel: index, oy, ox, c, taps, winners, result, resultText, divisor, divisorText};
  }

  function medianCells(panel, taps) {
    const real = taps.filter((t) => t.value !== undefined && !(panel.nanPolicy === "omit" && Number.isNaN(t.value)));
    const key = (t) => (t.exact !== undefined ? t.exact : t.value);  // 64-bit integers compare exactly
    const order = real.map((t, i) => [t, i]).sort((a, b) => (key(a[0]) < key(b[0]) ? -1 : key(a[0]) > key(b[0]) ? 1 : 0)
      || (a[1] - b[1]));
    if (!order.length) return [];
    const n = order.length, mid = Math.floor((n - 1) / 2);
    const chosen = n % 2 ? [order[mid]] : [order[mid], order[mid + 1]];
    return chosen.map(([t]) => ({y: t.y, x: t.x, sy: t.sy, sx: t.sx}));
  }

  // The outputs of each panel that read input cell (y, x), and for routing modes which route to it.
  function feeds(y, x, c) {
    return panels.map((panel, index) => {
      const [gy, gx] = axesOf(panel);
      const rows = readers(gy, y), cols = readers(gx, x);
      const fed = [], routed = [];
      const flat = SERIES ? x : y * W + x;
      for (const oy of rows) {
        for (const ox of cols) {
          if (panelValue(panel, panel.data, c, oy, ox) === undefined) continue;
          fed.push([oy, ox]);
          if (panel.idx && panelValue(panel, panel.idx, c, oy, ox) === flat) routed.push([oy, ox]);
        }
      }
      const grad = panel.grad ? inputGrad(panel, c, y, x) : undefined;
      return {panel: index, fed, routed, grad, routes: panel.routes};
    });
  }
  function inputGrad(panel, c, y, x) {
    if (y < E.y || y >= E.y + E.h || x < E.x || x >= E.x + E.w) return undefined;
    return panel.grad.values[(c * E.h + (y - E.y)) * E.w + (x - E.x)];
  }
  function readers(g, p) {  // windows o whose tap j reads position p (or a pad cell copying it)
    const positions = [p];
    if (g.padBefore) {  // the pad cells that copy p
      g.padBefore.forEach((source, i) => { if (source === p) positions.push(i - g.padLo); });
      g.padAfter.forEach((source, i) => { if (source === p) positions.push(g.size + i); });
    }
    const found = new Set();
    for (const q of positions) {
      for (let j = 0; j < g.window; j++) {
        const start = q + g.padLo - j * g.dilation;
        if (start >= 0 && start % g.stride === 0 && start / g.stride < g.out) found.add(start / g.stride);
      }
    }
    return [...found].sort((a, b) => a - b);
  }

  // ---------------------------------------------------------------- pixels
  const PAL = DATA.palette;
  function colourOf(v, lo, hi, grey) {
    if (Number.isNaN(v)) return PAL.nan;
    if (v === Infinity) return PAL.posinf;
    if (v === -Infinity) return PAL.neginf;
    let t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
    t = Math.min(1, Math.max(0, t));
    if (grey) { const g = Math.round(t * 255); return [g, g, g]; }
    return PAL.viridis[Math.round(t * 255)];
  }
  const CHECKER = [255, 204];  // the two greys behind transparent pixels (viz/style.py's CHECKER)
  const PREVIEW_CODES = 250, SPECIAL_CODES = [NaN, Infinity, -Infinity];
  function previewValues(arr, lo, hi) {  // a preview's codes (0..250 on its range, then NaN, +inf, -inf) as values
    return {values: Float32Array.from(arr.values, (c) => c > PREVIEW_CODES ? SPECIAL_CODES[c - PREVIEW_CODES - 1]
      : lo + (c / PREVIEW_CODES) * (hi - lo))};
  }
  function paint(arr, rows, cols, lo, hi) {  // an offscreen canvas of one layer, one pixel per cell
    const canvas = document.createElement("canvas");
    canvas.width = cols; canvas.height = rows;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(cols, rows);
    const plane = rows * cols, px = image.data;
    const grey = DATA.kind === "image";
    const alpha = view.colour && DATA.channels[3] === "A" ? 3 : null;  // RGBA: over the checkerboard, as compare draws it
    const square = Math.max(1, Math.round(Math.max(rows, cols) / 16));
    for (let i = 0; i < plane; i++) {
      let rgb;
      if (view.colour) {
        const unit = (k) => Math.min(1, Math.max(0, (arr.values[k * plane + i] - lo) / (hi - lo || 1)));
        const a = alpha === null || !Number.isFinite(arr.values[alpha * plane + i]) ? 1 : unit(alpha);
        const behind = CHECKER[(Math.floor(i / cols / square) + Math.floor((i % cols) / square)) % 2];
        rgb = [0, 1, 2].map((k) => {
          const v = arr.values[k * plane + i];
          return Number.isFinite(v) ? Math.round(unit(k) * 255 * a + behind * (1 - a)) : colourOf(v, lo, hi, true)[k];
        });
      } else {
        rgb = colourOf(arr.values[view.channel * plane + i], lo, hi, grey);
      }
      px[4 * i] = rgb[0]; px[4 * i + 1] = rgb[1]; px[4 * i + 2] = rgb[2]; px[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    return canvas;
  }
  function rangeOf(panel) {  // each channel on its own scale (feature maps, series) unless shared is chosen
    const own = view.perChannel && DATA.channelRanges;
    if (panel && panel.grows) return own ? panel.channelRanges[view.channel] : panel.range;
    return own ? DATA.channelRanges[view.channel] : DATA.range;
  }
  function repaint() {
    input.layers = [];
    if (DATA.overviewData) {
      const s = DATA.overview.step, sh = DATA.overviewData.shape;
      input.layers.push({canvas: paint(previewValues(DATA.overviewData, ...DATA.overview.range), sh[1], sh[2],
        ...rangeOf(null)), y: 0, x: 0,
        sy: s[0], sx: s[1], rows: sh[1], cols: sh[2]});
    }
    input.layers.push({canvas: paint(input, E.h, E.w, ...rangeOf(null)), y: E.y, x: E.x, sy: 1, sx: 1,
      rows: E.h, cols: E.w});
    for (const panel of panels) {
      const [gy, gx] = axesOf(panel), R = panel.region;
      panel.layers = [];
      if (panel.overviewData) {  // a preview of the whole result, under its exact region
        const s = panel.overview.step, sh = panel.overviewData.shape;
        panel.layers.push({canvas: paint(previewValues(panel.overviewData, ...panel.overview.range), sh[1], sh[2],
          ...rangeOf(panel)), y: -gy.padLo,
          x: -gx.padLo, sy: s[0] * gy.stride, sx: s[1] * gx.stride, rows: sh[1], cols: sh[2]});
      }
      panel.layers.push({canvas: paint(panel.data, R.h, R.w, ...rangeOf(panel)), y: R.y * gy.stride - gy.padLo,
        x: R.x * gx.stride - gx.padLo, sy: gy.stride, sx: gx.stride, rows: R.h, cols: R.w});
    }
  }

  // ---------------------------------------------------------------- panels on the page
  const views = [];  // one per canvas: {canvas, panel (null: the input), bar}
  const AXES = {left: 58, right: 12, top: 8, bottom: 24};  // a series plot's margins: its ticks and values
  function frame(v) {  // the part of a canvas that shows data: all of it, but a series' axes
    const cw = v.canvas.clientWidth, ch = v.canvas.clientHeight;
    if (!SERIES) return {x0: 0, y0: 0, w: cw, h: ch};
    return {x0: AXES.left, y0: AXES.top, w: Math.max(1, cw - AXES.left - AXES.right),
      h: Math.max(1, ch - AXES.top - AXES.bottom)};
  }
  function toScreen(v, y, x) {
    const f = frame(v);
    return [(x - view.cx) * view.scale + f.x0 + f.w / 2, (y - view.cy) * (SERIES ? 1 : view.scale) + f.y0 + f.h / 2];
  }
  function toInput(v, px, py) {
    const f = frame(v);
    return [SERIES ? 0 : (py - f.y0 - f.h / 2) / view.scale + view.cy, (px - f.x0 - f.w / 2) / view.scale + view.cx];
  }
  function valueAxis(v) {  // a series view's visible values [lo, hi] (its range, zoomed) and the screen row of a value
    const f = frame(v), own = v.panel ? (view.perChannel && DATA.channelRanges ? v.panel.channelRanges[view.channel]
      : v.panel.range) : [Infinity, -Infinity];  // a panel's line stays inside its plot, whatever its mode
    const lo = Math.min(rangeOf(v.panel)[0], own[0]), hi = Math.max(rangeOf(v.panel)[1], own[1]);
    const pad = (hi - lo) * 0.05 || 0.5, base = lo - pad, span = (hi - lo + 2 * pad) / view.yZoom;
    const bottom = base + (hi - lo + 2 * pad) * view.yCentre - span / 2;
    return {lo: bottom, hi: bottom + span, yOf: (value) => f.y0 + f.h - ((value - bottom) / span) * f.h};
  }
  function cellAt(v, px, py) {  // the cell (input) or output (panel) under a canvas point
    const [y, x] = toInput(v, px, py);
    if (!v.panel) {
      const cy = Math.floor(y), cx = Math.floor(x);
      return cy >= 0 && cy < H && cx >= 0 && cx < W ? [cy, cx] : null;
    }
    const [gy, gx] = axesOf(v.panel);
    const oy = SERIES ? 0 : Math.floor((y + gy.padLo) / gy.stride), ox = Math.floor((x + gx.padLo) / gx.stride);
    return oy >= 0 && oy < gy.out && ox >= 0 && ox < gx.out ? [oy, ox] : null;
  }
  function outputRect(panel, oy, ox) {  // where output (oy, ox) is drawn, in input coordinates
    const [gy, gx] = axesOf(panel);
    return [oy * gy.stride - gy.padLo, ox * gx.stride - gx.padLo, gy.stride, gx.stride];
  }

  function draw() {
    for (const v of views) drawView(v);
    drawBars();
  }
  function drawView(v) {
    const ctx = v.ctx, dpr = window.devicePixelRatio || 1;
    const cw = v.canvas.clientWidth, chh = v.canvas.clientHeight;
    if (v.canvas.width !== Math.round(cw * dpr) || v.canvas.height !== Math.round(chh * dpr)) {
      v.canvas.width = Math.round(cw * dpr); v.canvas.height = Math.round(chh * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#1b1d22"; ctx.fillRect(0, 0, cw, chh);
    if (SERIES) { drawSeries(v, ctx, cw, chh); return; }
    const [x0, y0] = toScreen(v, 0, 0), [x1, y1] = toScreen(v, H, W);
    const layers = v.panel ? v.panel.layers : input.layers;
    for (const L of layers) {
      const [a, b] = toScreen(v, L.y, L.x);
      ctx.drawImage(L.canvas, a, b, L.cols * L.sx * view.scale, L.rows * L.sy * view.scale);
    }
    ctx.strokeStyle = "#8a8f98"; ctx.lineWidth = 1; ctx.setLineDash([4, 3]);
    ctx.strokeRect(x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1);  // the image's edge: padding lies outside it
    if (DATA.overview) {  // the region whose exact values the page holds; a preview lies around it
      const [a, b] = toScreen(v, E.y, E.x);
      ctx.strokeStyle = "#ffffff"; ctx.setLineDash([2, 4]);
      ctx.strokeRect(a - 0.5, b - 0.5, E.w * view.scale + 1, E.h * view.scale + 1);
    }
    ctx.setLineDash([]);
    drawValues(v, ctx, cw, chh);
    drawOverlay(v, ctx);
  }
  function drawValues(v, ctx, cw, chh) {
    const panel = v.panel;
    const [gy, gx] = panel ? axesOf(panel) : [{stride: 1, padLo: 0}, {stride: 1, padLo: 0}];
    if (view.scale * Math.min(gy.stride, gx.stride) < CELL_TEXT_PX) return;
    const [ya, xa] = toInput(v, 0, 0), [yb, xb] = toInput(v, cw, chh);
    const c = view.channel;
    const cellWidth = view.scale * gx.stride;
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    const first = [Math.max(0, Math.floor((ya + gy.padLo) / gy.stride)), Math.max(0, Math.floor((xa + gx.padLo) / gx.stride))];
    const last = [Math.floor((yb + gy.padLo) / gy.stride), Math.floor((xb + gx.padLo) / gx.stride)];
    for (let oy = first[0]; oy <= last[0]; oy++) {
      for (let ox = first[1]; ox <= last[1]; ox++) {
        const value = panel ? panelValue(panel, panel.data, c, oy, ox) : inputValue(c, oy, ox);
        if (value === undefined) continue;
        const [sx, sy] = toScreen(v, oy * gy.stride - gy.padLo + gy.stride / 2, ox * gx.stride - gx.padLo + gx.stride / 2);
        const text = short(value, panel ? panel.data.dtype : input.dtype);
        const px = Math.min(13, (0.9 * cellWidth) / (0.62 * text.length));  // the text fits its cell
        if (px < 7) continue;
        ctx.font = `${px.toFixed(1)}px ui-monospace, monospace`;
        ctx.lineWidth = 3; ctx.strokeStyle = "rgba(0,0,0,0.75)"; ctx.strokeText(text, sx, sy);
        ctx.fillStyle = "#fff"; ctx.fillText(text, sx, sy);
      }
    }
  }
  const READ = "#c58af9";  // an output that reads the cell but routes it no gradient (its own legend style)
  function box(v, ctx, y, x, h, w, colour, width, dash) {
    const [a, b] = toScreen(v, y, x);
    ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.setLineDash(dash || []);
    ctx.strokeRect(a + width / 2, b + width / 2, Math.max(1, w * view.scale - width), Math.max(1, h * view.scale - width));
    ctx.setLineDash([]);
  }
  function drawOverlay(v, ctx) {
    const probe = api.state.probe;
    if (!probe) return;
    if (probe.kind === "output") {
      const win = probe.window;
      if (!v.panel) {
        for (const t of win.taps) {
          const colour = t.kind === "in" ? "#ffd400" : t.kind === "copy" ? "#4fd1ff" : t.kind === "pad" ? "#4fd1ff" : "#9aa0a6";
          box(v, ctx, t.y, t.x, 1, 1, colour, 2, t.kind === "in" ? null : [3, 2]);
          if (t.kind === "overhang") {
            const [a, b] = toScreen(v, t.y, t.x), s = view.scale;
            ctx.beginPath(); ctx.moveTo(a, b); ctx.lineTo(a + s, b + s); ctx.moveTo(a + s, b); ctx.lineTo(a, b + s); ctx.stroke();
          }
        }
        const ys = win.taps.map((t) => t.y), xs = win.taps.map((t) => t.x);
        const top = Math.min(...ys), left = Math.min(...xs);
        box(v, ctx, top - 0.15, left - 0.15, Math.max(...ys) - top + 1.3, Math.max(...xs) - left + 1.3, "#ffffff", 1, [6, 3]);
        for (const w of win.winners) box(v, ctx, w.y - 0.1, w.x - 0.1, 1.2, 1.2, "#ff3b30", 4);
      } else if (v.panel === panels[probe.panel]) {
        const [y, x, h, w] = outputRect(v.panel, probe.oy, probe.ox);
        box(v, ctx, y, x, h, w, "#ffd400", 3);
      }
    } else {
      if (!v.panel) { box(v, ctx, probe.y, probe.x, 1, 1, "#ffd400", 3); return; }
      const info = probe.routing[panels.indexOf(v.panel)];
      for (const [oy, ox] of info.fed) {
        const [y, x, h, w] = outputRect(v.panel, oy, ox);
        box(v, ctx, y, x, h, w, info.routes ? READ : "#ffd400", 2, info.routes ? [2, 2] : null);
      }
      for (const [oy, ox] of info.routed) {
        const [y, x, h, w] = outputRect(v.panel, oy, ox);
        box(v, ctx, y, x, h, w, "#34c759", 4);
      }
    }
  }

  // 1-D series: a line plot per panel on the shared x axis (sample positions) with its value axis; both zoom.
  function niceTicks(a, b, count, whole) {  // round values in [a, b], about `count` of them (integers if `whole`)
    const span = b - a;
    if (!(span > 0) || !Number.isFinite(span)) return Number.isFinite(a) ? [a] : [];
    const raw = span / count, magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = [1, 2, 5, 10].map((m) => m * magnitude).find((t) => t >= raw);
    if (whole) step = Math.max(1, Math.round(step));
    const ticks = [];
    for (let t = Math.ceil(a / step) * step; t <= b + step * 1e-9 && ticks.length < 50; t += step) {
      ticks.push(Number(t.toPrecision(12)));
    }
    return ticks;
  }
  function ticksOf(v, axis) {  // a series view's visible samples [xa, xb] and the ticks of both axes
    const f = frame(v), [, xa] = toInput(v, f.x0, 0), [, xb] = toInput(v, f.x0 + f.w, 0);
    return {x: [xa, xb], y: [axis.lo, axis.hi], xTicks: niceTicks(xa, xb, Math.max(2, Math.floor(f.w / 90)), true),
      yTicks: niceTicks(axis.lo, axis.hi, Math.max(2, Math.floor(f.h / 30)), false)};
  }
  function drawAxes(v, ctx, axis) {
    const f = frame(v), ticks = ticksOf(v, axis);
    ctx.font = "11px ui-monospace, monospace"; ctx.fillStyle = "#9aa0a6"; ctx.strokeStyle = "#2f333a"; ctx.lineWidth = 1;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const t of ticks.yTicks) {
      const y = Math.round(axis.yOf(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(f.x0, y); ctx.lineTo(f.x0 + f.w, y); ctx.stroke();
      ctx.fillText(short(t, "float64"), f.x0 - 6, y);
    }
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const t of ticks.xTicks) {
      const [x] = toScreen(v, 0, t + 0.5), px = Math.round(x) + 0.5;  // sample t's cell centre
      ctx.beginPath(); ctx.moveTo(px, f.y0); ctx.lineTo(px, f.y0 + f.h); ctx.stroke();
      ctx.fillText(String(t), px, f.y0 + f.h + 5);
    }
    ctx.strokeStyle = "#8a8f98";
    ctx.beginPath(); ctx.moveTo(f.x0 + 0.5, f.y0); ctx.lineTo(f.x0 + 0.5, f.y0 + f.h + 0.5); ctx.lineTo(f.x0 + f.w, f.y0 + f.h + 0.5);
    ctx.stroke();
  }
  function drawSeries(v, ctx, cw, chh) {
    const panel = v.panel, c = view.channel, f = frame(v), axis = valueAxis(v);
    const top = f.y0, height = f.h;
    const yOf = (value) => (Number.isFinite(value) ? axis.yOf(value) : top + height / 2);
    drawAxes(v, ctx, axis);
    ctx.save(); ctx.beginPath(); ctx.rect(f.x0, f.y0, f.w, f.h); ctx.clip();
    const probe = api.state.probe;
    if (probe && probe.kind === "output" && !panel) {
      const xs = probe.window.taps.map((t) => t.x);
      const [a] = toScreen(v, 0, Math.min(...xs)), [b] = toScreen(v, 0, Math.max(...xs) + 1);
      ctx.fillStyle = "rgba(255,212,0,0.15)"; ctx.fillRect(a, top, b - a, height);
      for (const t of probe.window.taps) {
        const [p] = toScreen(v, 0, t.x + 0.5);
        ctx.fillStyle = t.kind === "in" ? "#ffd400" : "#4fd1ff";
        ctx.fillRect(p - 1, top, 2, 10);
      }
      for (const w of probe.window.winners) {
        const [p] = toScreen(v, 0, w.x + 0.5);
        ctx.fillStyle = "#ff3b30"; ctx.beginPath(); ctx.arc(p, yOf(inputValue(c, 0, w.sx)), 6, 0, 7); ctx.fill();
      }
    }
    const [x0] = toScreen(v, 0, 0), [x1] = toScreen(v, 0, W);
    ctx.strokeStyle = "#8a8f98"; ctx.setLineDash([4, 3]); ctx.strokeRect(x0, top + 1, x1 - x0, height - 2); ctx.setLineDash([]);
    ctx.strokeStyle = panel ? "#4fd1ff" : "#e8eaed"; ctx.lineWidth = 1.5; ctx.beginPath();
    let started = false;
    const count = panel ? panel.region.w : E.w;
    for (let i = 0; i < count; i++) {
      const value = panel ? panel.data.values[c * count + i] : input.values[c * count + i];
      let a, b;
      if (panel) {
        const [, x, , w] = outputRect(panel, 0, panel.region.x + i);
        [a] = toScreen(v, 0, x); [b] = toScreen(v, 0, x + w);
      } else {
        [a] = toScreen(v, 0, E.x + i); [b] = toScreen(v, 0, E.x + i + 1);
      }
      if (!Number.isFinite(value)) {
        ctx.stroke(); started = false;
        ctx.fillStyle = `rgb(${colourOf(value, 0, 1).join(",")})`; ctx.fillRect(a, top, Math.max(2, b - a), 8);
        ctx.beginPath(); continue;
      }
      const y = yOf(value);
      if (!started) { ctx.moveTo(a, y); started = true; } else ctx.lineTo(a, y);
      ctx.lineTo(b, y);
    }
    ctx.stroke();
    if (probe && probe.kind === "output" && panel === panels[probe.panel]) {
      const [, x, , w] = outputRect(panel, 0, probe.ox);
      const [a] = toScreen(v, 0, x), [b] = toScreen(v, 0, x + w);
      ctx.strokeStyle = "#ffd400"; ctx.lineWidth = 3; ctx.strokeRect(a, top + 2, b - a, height - 4);
    }
    if (probe && probe.kind === "input") {
      const [a] = toScreen(v, 0, probe.x), [b] = toScreen(v, 0, probe.x + 1);
      if (!panel) { ctx.strokeStyle = "#ffd400"; ctx.lineWidth = 3; ctx.strokeRect(a, top + 2, b - a, height - 4); }
      else {
        const info = probe.routing[panels.indexOf(panel)];
        for (const [, ox] of info.fed) {
          const [, x, , w] = outputRect(panel, 0, ox);
          const [p] = toScreen(v, 0, x), [q] = toScreen(v, 0, x + w);
          const routed = info.routed.some(([, r]) => r === ox);
          ctx.strokeStyle = routed ? "#34c759" : info.routes ? READ : "#ffd400";
          ctx.lineWidth = routed ? 4 : 2; ctx.strokeRect(p, top + 2, q - p, height - 4);
        }
      }
    }
    ctx.restore();
  }

  // ---------------------------------------------------------------- colour bars
  function drawBars() {
    for (const v of views) {
      if (!v.bar) continue;
      if (SERIES) { v.barValue.textContent = v.hoverText || ""; continue; }
      const [lo, hi] = rangeOf(v.panel);
      v.barLo.textContent = short(lo, "float64"); v.barHi.textContent = short(hi, "float64");
      const mark = v.hover;
      if (mark === undefined) { v.barMark.style.display = "none"; v.barValue.textContent = ""; continue; }
      v.barValue.textContent = v.hoverText;
      if (!Number.isFinite(mark)) { v.barMark.style.display = "none"; continue; }
      const t = Math.min(1, Math.max(0, hi > lo ? (mark - lo) / (hi - lo) : 0.5));
      v.barMark.style.display = "block"; v.barMark.style.left = `${(t * 100).toFixed(2)}%`;
    }
  }

  // ---------------------------------------------------------------- the readout
  const readout = document.getElementById("readout");
  function cellName(y, x) { return SERIES ? `[${x}]` : `(${y}, ${x})`; }
  function esc(text) { return String(text).replace(/[&<>"]/g, (ch) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[ch])); }
  function showOutput(win) {
    const panel = panels[win.panel];
    const rows = win.taps.map((t, j) => {
      const isWinner = win.winners.some((w) => w.y === t.y && w.x === t.x);
      const where = t.kind === "in" ? cellName(t.y, t.x)
        : t.kind === "copy" ? `${cellName(t.y, t.x)} pad, copies ${cellName(t.sy, t.sx)}`
          : t.kind === "pad" ? `${cellName(t.y, t.x)} zero pad` : `${cellName(t.y, t.x)} ceil overhang`;
      const value = t.value !== undefined ? t.text : t.kind === "pad" ? (panel.reducer === "sum" ? "0" : "ignored")
        : t.kind === "overhang" ? "not counted" : "outside the exact region";
      return `<tr data-tap="${j}" data-y="${t.y}" data-x="${t.x}" data-kind="${t.kind}"${isWinner ? ' data-winner="1" class="winner"' : ""}>` +
        `<td>${j}</td><td>${esc(where)}</td><td class="num">${esc(value)}</td><td>${isWinner ? "winner" : ""}</td></tr>`;
    }).join("");
    const real = win.taps.filter((t) => t.value !== undefined);
    const lines = [];
    const power = panel.power === "2" ? 2 : panel.power === "p" ? panel.p : 1;
    const weighted = panel.byAlpha && DATA.channels[view.channel] !== "A";  // colour: a ratio, the divisor cancels
    if (panel.reducer === "sum" && !weighted) {
      const what = power === 1 ? "sum of taps" : power === 2 ? "sum of squares" : `sum of |x|^${panel.p}`;
      if (power === 1 && real.length && real.every((t) => t.exact !== undefined)) {  // 64-bit integers: exactly
        const total = real.reduce((sum, t) => sum + BigInt(t.exact), 0n);
        lines.push(`<div>${what} (exact, here) = <span data-role="sum">${total}</span></div>`);
      } else {
        let total = 0;
        for (const t of real) total += power === 1 ? t.value : Math.pow(Math.abs(t.value), power);
        lines.push(`<div>${what} (float64, here) = <span data-role="sum">${fmt(total, "float64")}</span></div>`);
      }
    }
    if (win.divisorText && !weighted) lines.push(`<div data-role="divisor" data-value="${win.divisor}">${esc(win.divisorText)}</div>`);
    const formula = panel.formula.replace("{p}", () => String(panel.p));  // the mode's record (core/modes.py)
    const winnerText = win.winners.length ? win.winners.map((w) => cellName(w.sy, w.sx)).join(" and ") : "";
    const exact = win.result === undefined ? undefined : exactOf(panel, win);
    const exactText = exact === undefined ? "" : ` <span class="exact">exact <span data-role="exact">${esc(fmt(exact, "float64"))}</span>` +
      ` (float64, here; pool writes it as ${esc(panel.data.dtype)}, rounded half up)</span>`;
    readout.innerHTML = `<h3>${esc(panel.label)}: output ${cellName(win.oy, win.ox)}${DATA.channels.length > 1 ? ", " + esc(DATA.channels[view.channel]) : ""}</h3>` +
      `<div class="result">written (engine) = <b data-role="result">${esc(win.result === undefined ? "outside the exact region" : win.resultText)}</b>${exactText} <span class="muted">${esc(formula)}</span></div>` +
      (weighted ? `<div class="muted" data-role="alpha">colour weighted by alpha (premultiplied): sum(c*a) / sum(a) over the window's taps</div>` : "") +
      (winnerText ? `<div>winner: <span data-role="winner">${esc(winnerText)}</span>${panel.idx ? " (engine index)" : " (sorted here)"}</div>` : "") +
      lines.join("") +
      `<table><thead><tr><th>tap</th><th>cell</th><th>value</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
  }
  // The exact value of a window whose result pool writes as integers (rounded): in float64, from the taps here.
  function exactOf(panel, win) {
    if (panel.data.dtype.startsWith("float")) return undefined;  // a float result is exact itself
    const omit = panel.nanPolicy === "omit";
    const real = win.taps.filter((t) => t.value !== undefined && !(omit && Number.isNaN(t.value)));
    if (win.taps.some((t) => (t.kind === "in" || t.kind === "copy") && t.value === undefined)) return undefined;  // beyond the region
    if (panel.reducer === "extreme") return undefined;  // a tap's own value: nothing to round
    if (panel.reducer === "median") {
      const middle = win.winners.map((w) => inputValue(win.c, w.sy, w.sx));
      return middle.length ? middle.reduce((a, b) => a + b, 0) / middle.length : undefined;
    }
    const q = panel.power === "2" ? 2 : panel.power === "p" ? panel.p : 1;
    const family = (values, divisor) => {  // the mode over `values`: sum, or root of the power sum, / divisor
      let total = 0;
      for (const x of values) total += q === 1 ? x : Math.pow(Math.abs(x), q);
      if (divisor) total /= divisor;
      return q === 1 ? total : Math.pow(total, 1 / q);
    };
    const alpha = DATA.channelCount - 1;
    if (!panel.byAlpha || win.c === alpha) {
      const nans = omit ? win.taps.filter((t) => Number.isNaN(t.value)).length : 0;
      return family(real.map((t) => t.value), panel.divisor && win.divisor ? win.divisor - nans : null);
    }
    const weights = real.map((t) => inputValue(alpha, t.sy, t.sx));  // the divisor cancels: a ratio
    const below = family(weights, null);
    return below > 0 ? family(real.map((t, i) => t.value * weights[i]), null) / below : 0;
  }
  function showInput(probe) {
    const v = textAt(input, inputIndex(view.channel, probe.y, probe.x));
    const parts = probe.routing.map((info) => {
      const panel = panels[info.panel];
      const list = (cells) => cells.slice(0, 24).map(([oy, ox]) => cellName(oy, ox)).join(" ") + (cells.length > 24 ? " ..." : "");
      let text = `<li data-panel="${info.panel}" data-fed="${info.fed.length}" data-routed="${info.routed.length}">` +
        `<b>${esc(panel.label)}</b>: read by ${info.fed.length} output${info.fed.length === 1 ? "" : "s"} ${list(info.fed)}`;
      if (info.routes) {
        text += info.grad !== undefined ? `; gradient dL/dx = <span data-role="grad">${fmt(info.grad, panel.grad.dtype)}</span>` : "";
        text += info.routed.length ? `, routed from ${list(info.routed)}` : ", receives no gradient";
      }
      return text + "</li>";
    });
    readout.innerHTML = `<h3>input ${cellName(probe.y, probe.x)}${DATA.channels.length > 1 ? ", " + esc(DATA.channels[view.channel]) : ""}</h3>` +
      `<div class="result">value = <b data-role="value">${esc(v === undefined ? "outside the exact region" : v)}</b></div>` +
      `<ul>${parts.join("")}</ul>` +
      `<div class="muted">gradient for dL/dy = 1, as poolcli grad computes it (pool_backward); green: routed here</div>`;
  }

  // ---------------------------------------------------------------- probes
  function probeOutput(index, oy, ox) {
    const panel = panels[index], [gy, gx] = axesOf(panel);
    oy = Math.min(gy.out - 1, Math.max(0, oy)); ox = Math.min(gx.out - 1, Math.max(0, ox));
    const win = windowOf(index, oy, ox, view.channel);
    api.state.probe = {kind: "output", panel: index, oy, ox, window: win};
    api.state.outline = win.taps.map((t) => ({y: t.y, x: t.x, kind: t.kind}));
    api.state.winners = win.winners;
    api.state.routing = [];
    showOutput(win);
    hoverValues(null, [oy, ox], index);
    draw();
  }
  function probeInput(y, x) {
    y = Math.min(H - 1, Math.max(0, y)); x = Math.min(W - 1, Math.max(0, x));
    const routing = feeds(y, x, view.channel);
    api.state.probe = {kind: "input", y, x, routing};
    api.state.outline = []; api.state.winners = [];
    api.state.routing = routing;
    showInput(api.state.probe);
    hoverValues([y, x], null, null);
    draw();
  }
  function hoverValues(cell, out, index) {
    for (const v of views) {
      const arr = v.panel ? v.panel.data : input;
      const at = !v.panel ? cell && inputIndex(view.channel, ...cell)
        : out && panels.indexOf(v.panel) === index ? panelIndex(v.panel, view.channel, ...out) : undefined;
      v.hover = at === undefined || at === null ? undefined : arr.values[at];
      v.hoverText = v.hover === undefined ? "" : textAt(arr, at);
    }
  }
  api.probeOutput = probeOutput;
  api.probeInput = probeInput;
  // The client coordinates of the centre of a cell of view `index` (0: the input, i+1: panel i), for tests.
  api.cellCentre = function (index, y, x) {
    const v = views[index], rect = v.canvas.getBoundingClientRect();
    const [top, left, h, w] = v.panel ? outputRect(v.panel, y, x) : [y, x, 1, 1];
    const [a, b] = toScreen(v, top + h / 2, left + w / 2);
    return {x: rect.left + a, y: SERIES ? rect.top + v.canvas.clientHeight / 2 : rect.top + b};
  };
  api.zoomTo = function (scale, cy, cx) { view.scale = scale; view.cy = cy; view.cx = cx; draw(); };
  // A series view's axes as drawn: the visible samples and values, and their ticks, for tests.
  api.seriesAxes = (index) => Object.assign(ticksOf(views[index], valueAxis(views[index])), {frame: frame(views[index])});

  // ---------------------------------------------------------------- events
  function fit() {
    const v = views[0], f = frame(v), pad = Math.max(...panels.map((p) => Math.max(...p.axes.map((g) => g.padLo + g.padHi))), 0);
    view.scale = Math.min(f.w / (W + pad + 1), SERIES ? Infinity : f.h / (H + pad + 1));
    view.cx = W / 2; view.cy = H / 2; view.yZoom = 1; view.yCentre = 0.5; draw();
  }
  function zoomAt(v, factor, px, py, alongOnly) {  // a series zooms its values too (unless `alongOnly`)
    const [y, x] = toInput(v, px, py);
    view.scale = Math.min(400, Math.max(0.01, view.scale * factor));
    const [y2, x2] = toInput(v, px, py);
    view.cx += x - x2; if (!SERIES) view.cy += y - y2;
    if (SERIES && !alongOnly) {
      const f = frame(v), at = (f.y0 + f.h - py) / f.h - 0.5;  // the pointer's height from the middle, in views
      const before = view.yCentre + at / view.yZoom;  // the fraction of the full range under the pointer
      view.yZoom = Math.min(1e6, Math.max(0.05, view.yZoom * factor));
      view.yCentre = before - at / view.yZoom;
    }
    draw();
  }
  function attach(v) {
    const canvas = v.canvas;
    let drag = null;
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault(); zoomAt(v, Math.exp(-e.deltaY * 0.0015), e.offsetX, e.offsetY, e.shiftKey);
    }, {passive: false});
    canvas.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY]; canvas.focus(); });
    window.addEventListener("mouseup", () => { drag = null; });
    canvas.addEventListener("mousemove", (e) => {
      if (drag) {
        view.cx -= (e.clientX - drag[0]) / view.scale;
        if (!SERIES) view.cy -= (e.clientY - drag[1]) / view.scale;
        else view.yCentre += (e.clientY - drag[1]) / frame(v).h / view.yZoom;
        drag = [e.clientX, e.clientY]; draw(); return;
      }
      const cell = cellAt(v, e.offsetX, e.offsetY);
      if (!cell) return;
      api.active = views.indexOf(v);
      if (v.panel) probeOutput(panels.indexOf(v.panel), ...cell); else probeInput(...cell);
    });
    canvas.addEventListener("focus", () => { api.active = views.indexOf(v); });
    canvas.addEventListener("keydown", (e) => {
      const step = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[e.key];
      if (e.key === "+" || e.key === "=") { zoomAt(v, 1.5, canvas.clientWidth / 2, canvas.clientHeight / 2); return; }
      if (e.key === "-") { zoomAt(v, 1 / 1.5, canvas.clientWidth / 2, canvas.clientHeight / 2); return; }
      if (e.key === "0") { fit(); return; }
      if (!step) return;
      e.preventDefault();
      const probe = api.state.probe;
      if (v.panel) {
        const index = panels.indexOf(v.panel);
        const [oy, ox] = probe && probe.kind === "output" && probe.panel === index ? [probe.oy, probe.ox] : [0, 0];
        probeOutput(index, oy + (SERIES ? 0 : step[0]), ox + step[1] + (SERIES ? step[0] : 0));
      } else {
        const [y, x] = probe && probe.kind === "input" ? [probe.y, probe.x] : [0, 0];
        probeInput(y + (SERIES ? 0 : step[0]), x + step[1] + (SERIES ? step[0] : 0));
      }
    });
  }

  function build() {
    const grid = document.getElementById("panels");
    const make = (panel, title) => {
      const figure = document.createElement("figure");
      figure.className = "panel";
      const caption = document.createElement("figcaption");
      caption.textContent = title;
      const canvas = document.createElement("canvas");
      canvas.tabIndex = 0;
      canvas.className = SERIES ? "series" : "";
      canvas.setAttribute("aria-label", `${title}: hover or use the arrow keys to probe`);
      figure.append(caption, canvas);
      const v = {panel, canvas, ctx: canvas.getContext("2d"), hover: undefined};
      const bar = document.createElement("div");
      bar.className = SERIES ? "bar series" : "bar";  // a series' colours mean nothing: its value alone
      bar.innerHTML = '<span class="lo"></span><span class="ramp"><i class="mark"></i></span><span class="hi"></span><span class="value"></span>';
      figure.append(bar);
      v.bar = bar; v.barLo = bar.querySelector(".lo"); v.barHi = bar.querySelector(".hi");
      v.barMark = bar.querySelector(".mark"); v.barValue = bar.querySelector(".value");
      bar.querySelector(".ramp").style.background = rampCss();
      grid.append(figure);
      views.push(v);
      attach(v);
    };
    const shape = DATA.shape.join("x");
    make(null, `input ${DATA.title} ${shape} ${DATA.dtype}`);
    panels.forEach((panel) => make(panel, `${panel.label} ${panel.data.dtype}`));
    const select = document.getElementById("channel");
    DATA.channels.forEach((name, i) => { const o = document.createElement("option"); o.value = i; o.textContent = name; select.append(o); });
    select.addEventListener("change", () => { view.channel = Number(select.value); repaint(); refreshProbe(); });
    const colour = document.getElementById("colour");
    colour.checked = view.colour; colour.disabled = !DATA.colour;
    colour.addEventListener("change", () => { view.colour = colour.checked; document.body.classList.toggle("colour", view.colour); repaint(); draw(); });
    document.body.classList.toggle("colour", view.colour);
    document.body.classList.toggle("series", SERIES);
    const scale = document.getElementById("scale");
    scale.value = view.perChannel ? "channel" : "shared";
    document.body.classList.toggle("shared-hidden", !DATA.channelRanges || DATA.channels.length < 2);
    scale.addEventListener("change", () => { view.perChannel = scale.value === "channel"; repaint(); draw(); });
    document.getElementById("fit").addEventListener("click", fit);
    window.addEventListener("resize", draw);
  }
  function rampCss() {
    const grey = DATA.kind === "image";
    const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => { const c = grey ? [t * 255, t * 255, t * 255] : PAL.viridis[Math.round(t * 255)]; return `rgb(${c.map(Math.round).join(",")}) ${t * 100}%`; });
    return `linear-gradient(to right, ${stops.join(",")})`;
  }
  function refreshProbe() {
    const probe = api.state.probe;
    if (!probe) { draw(); return; }
    if (probe.kind === "output") probeOutput(probe.panel, probe.oy, probe.ox); else probeInput(probe.y, probe.x);
  }

  async function start() {
    input = await decode(DATA.input);
    if (DATA.overview) DATA.overviewData = await decode(DATA.overview.data);
    panels = await Promise.all(DATA.panels.map(async (p) => Object.assign(p, {
      data: await decode(p.values), idx: await decode(p.indices), grad: await decode(p.grad),
      overviewData: p.overview ? await decode(p.overview.data) : null})));
    build();
    repaint();
    fit();
    const first = panels[0];
    probeOutput(0, first.region.y, first.region.x);
    api.ready = true;
    document.body.dataset.ready = "1";
  }
  start().catch((error) => {
    document.getElementById("readout").textContent = `poolcli inspector could not start: ${error}`;
    throw error;
  });
})();
