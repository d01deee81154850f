// The web console's page script: polls /console/status.json (what `themis-admin status --json`
// prints) and draws the token ring as SVG beside the shards, moves and warnings. No framework.
// Everything from the status goes into the page as text nodes or attribute values (textContent,
// setAttribute), never as markup: shard ids and messages are treated as untrusted text.
'use strict';

const POLL_MS = 2000;
const SVG = 'http://www.w3.org/2000/svg';
const SPACE = 2 ** 64;
const CENTRE = 220;
const OWNER_R = 180;
const OWNER_W = 34;
const REPLICA_W = 12;
const MOVE_R = 208;

/** A colour per shard, stable for a shard id while the set of shards stays the same. */
function palette(ids) {
  const sorted = [...ids].sort();
  return new Map(sorted.map((id, i) => [id, `hsl(${Math.round((i * 137.508) % 360)}, 62%, 50%)`]));
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function svg(tag, attrs = {}, title) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (title !== undefined) {
    const t = document.createElementNS(SVG, 'title');
    t.textContent = String(title);
    e.appendChild(t);
  }
  return e;
}

/** Token (0x… hex string) → fraction of the ring; an end is inclusive, so it ends one token later. */
const frac = (hex, inclusiveEnd = false) => (Number(BigInt(hex)) + (inclusiveEnd ? 1 : 0)) / SPACE;

function point(f, r) {
  const a = 2 * Math.PI * f - Math.PI / 2;
  return [CENTRE + r * Math.cos(a), CENTRE + r * Math.sin(a)];
}

/** An SVG path along the circle of radius r from fraction a to b (a whole turn drawn as two halves). */
function arcPath(a, b, r) {
  if (b - a >= 0.999999) return `${arcPath(0, 0.5, r)} ${arcPath(0.5, 1, r)}`;
  const [x1, y1] = point(a, r);
  const [x2, y2] = point(b, r);
  const large = b - a > 0.5 ? 1 : 0;
  return `M ${x1.toFixed(2)} ${y1.toFixed(2)} A ${r} ${r} 0 ${large} 1 ${x2.toFixed(2)} ${y2.toFixed(2)}`;
}

function drawRing(s, colours) {
  const ring = document.getElementById('ring');
  for (const child of [...ring.children]) if (child.tagName !== 'title') child.remove();
  ring.appendChild(svg('circle', { cx: CENTRE, cy: CENTRE, r: OWNER_R, fill: 'none', stroke: '#e2e8f0', 'stroke-width': OWNER_W }));
  for (const r of s.ranges) {
    const a = frac(r.start);
    const b = frac(r.end, true);
    ring.appendChild(svg('path', {
      d: arcPath(a, b, OWNER_R), fill: 'none', stroke: colours.get(r.owner) ?? '#999', 'stroke-width': OWNER_W,
      'data-owner': r.owner, class: 'owner-arc',
    }, `${r.start}–${r.end}: owner ${r.owner}${r.replicas.length ? `, replicas ${r.replicas.join(', ')}` : ''}`));
    r.replicas.forEach((rep, i) => {
      ring.appendChild(svg('path', {
        d: arcPath(a, b, OWNER_R - OWNER_W / 2 - 4 - REPLICA_W / 2 - i * (REPLICA_W + 3)), fill: 'none', stroke: colours.get(rep) ?? '#999', 'stroke-width': REPLICA_W,
        'data-replica': rep, class: 'replica-arc',
      }, `${r.start}–${r.end}: replica ${rep} of ${r.owner}`));
    });
  }
  // Range boundaries: a thin white tick between neighbouring arcs.
  for (const r of s.ranges) {
    const [x1, y1] = point(frac(r.start), OWNER_R - OWNER_W / 2);
    const [x2, y2] = point(frac(r.start), OWNER_R + OWNER_W / 2);
    ring.appendChild(svg('line', { x1, y1, x2, y2, stroke: '#fff', 'stroke-width': 1.5 }));
  }
  for (const m of s.moves) {
    for (const mv of m.ranges) {
      const p = m.progress[mv.to];
      const how = p ? `, ${p.keys_copied} keys copied, ${p.lag_changes ?? '?'} changes behind` : '';
      ring.appendChild(svg('path', {
        d: arcPath(frac(mv.start), frac(mv.end, true), MOVE_R), fill: 'none', stroke: colours.get(mv.to) ?? '#999', 'stroke-width': 8,
        'stroke-dasharray': '6 4', class: 'move-arc', 'data-op': m.op,
      }, `moving ${mv.start}–${mv.end} (${mv.role}) ${mv.from} → ${mv.to}: ${m.shards[mv.to] ?? '?'}${how}`));
    }
  }
  ring.appendChild(svg('text', { x: CENTRE, y: CENTRE - 4, 'text-anchor': 'middle', class: 'ring-epoch', id: 'ring-epoch' })).textContent = `epoch ${s.epoch ?? '–'}`;
  ring.appendChild(svg('text', { x: CENTRE, y: CENTRE + 20, 'text-anchor': 'middle', class: 'ring-label' })).textContent = `${s.ranges.length} ranges, ${s.shards.length} shards`;
}

const pct = (v) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)} %`);

function lagText(rep) {
  const parts = Object.entries(rep ?? {}).map(([p, f]) => (f.state === 'following' ? `${p}: ${f.lag_changes < 0 ? '?' : f.lag_changes} behind` : `${p}: ${f.state}`));
  return parts.length ? parts.join(', ') : '–';
}

function drawShards(s, colours) {
  const body = document.querySelector('#shards tbody');
  body.replaceChildren(...s.shards.map((x) => {
    const tr = el('tr', { 'data-shard': x.shard });
    const name = el('td', { class: 'shard-id' });
    const sw = el('span', { class: 'swatch' });
    sw.style.backgroundColor = colours.get(x.shard) ?? '#999';
    name.append(sw, document.createTextNode(x.shard));
    const cert = x.cert_not_after === null ? '–' : `${x.cert_not_after.slice(0, 10)} (${x.cert_days_left} d)`;
    tr.append(
      name,
      el('td', { class: x.alive ? 'ok' : 'bad' }, x.alive ? 'yes' : 'no'),
      el('td', { class: x.lagging ? 'bad shard-epoch' : 'shard-epoch' }, `${x.epoch ?? '–'}${x.lagging ? ' (lagging)' : ''}`),
      el('td', {}, `${x.ranges} + ${x.replica_ranges}`),
      el('td', {}, pct(x.token_share)),
      el('td', {}, x.keys === null ? '–' : `${x.keys} (${pct(x.key_share)})`),
      el('td', { class: x.cert_expiring ? 'bad' : '' }, cert),
      el('td', {}, lagText(x.replication)),
    );
    return tr;
  }));
}

function drawList(id, items, empty) {
  const ul = document.getElementById(id);
  ul.replaceChildren(...(items.length ? items.map((t) => el('li', {}, t)) : [el('li', { class: 'none' }, empty)]));
}

function moveText(m) {
  const shards = Object.entries(m.shards).map(([sh, phase]) => {
    const p = m.progress[sh];
    const eta = p && p.eta_seconds !== null ? `, ETA ${p.eta_seconds} s` : '';
    return p ? `${sh} ${phase} (${p.keys_copied} keys copied, ${p.lag_changes ?? '?'} changes behind${eta})` : `${sh} ${phase}`;
  });
  const ranges = m.ranges.map((r) => `${r.from} → ${r.to}`);
  return `${m.op}: ${shards.join(', ')}${ranges.length ? ` — ${[...new Set(ranges)].join(', ')}` : ''}`;
}

function draw(s) {
  const colours = palette(s.shards.map((x) => x.shard));
  document.getElementById('cluster').textContent = s.cluster;
  document.getElementById('epoch').textContent = s.epoch ?? '–';
  document.getElementById('topology').textContent = `(${s.topology})`;
  document.getElementById('at').textContent = s.at;
  drawRing(s, colours);
  drawShards(s, colours);
  drawList('moves', s.moves.map(moveText), 'none');
  drawList('warnings', s.warnings, 'none');
  document.body.dataset.epoch = String(s.epoch ?? '');
}

async function poll() {
  try {
    const r = await fetch('/console/status.json', { cache: 'no-store' });
    const body = await r.json();
    if (!r.ok) throw new Error(body.message ?? `HTTP ${r.status}`);
    draw(body);
    document.getElementById('stale').hidden = true;
  } catch (e) {
    document.getElementById('stale-why').textContent = e.message;
    document.getElementById('stale').hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
