"""The viewer's one HTML file: the episodes as JSON inside the page (a page opened from disk
cannot fetch files) and plain JavaScript that draws the table, the filters and each
episode's panel. Thumbnails are the only other files (`thumbs/`, next to the page)."""

from __future__ import annotations

import json
from typing import Any

# Turn colours: the opening frames (turn 1) first; a turn's requested spans take its colour.
TURN_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7")

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin: 0.2em 0; }
#filters label { margin-right: 1em; }
table { border-collapse: collapse; margin-top: 0.8em; }
th, td { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left; }
th.sortable { cursor: pointer; text-decoration: underline dotted; }
tr.episode { cursor: pointer; } tr.episode:hover { background: #f3f6fa; }
.correct { color: #2a7a2a; } .wrong { color: #a33; } .invalid { color: #b36b00; }
.failed { color: #777; }
#panel { margin-top: 1em; padding: 0.8em; border: 1px solid #bbb; border-radius: 6px; }
.timeline { position: relative; height: 46px; margin: 4px 0 14px; background: #eee;
            border-radius: 3px; }
.timeline .rel { position: absolute; top: 0; height: 46px; background: rgba(60,170,60,.35); }
.timeline .req { position: absolute; height: 8px; top: 2px; opacity: 0.7;
                 min-width: 3px; border-radius: 2px; }
.timeline .mark { position: absolute; width: 3px; height: 22px; bottom: 2px; }
.timeline .ends { position: absolute; bottom: -14px; font-size: 10px; color: #666; }
.turn { margin: 0.6em 0; padding-left: 0.6em; border-left: 4px solid #ccc; }
.thumbs { display: flex; flex-wrap: wrap; gap: 4px; margin: 4px 0; }
.thumbs figure { margin: 0; font-size: 10px; text-align: center; }
.thumbs img { display: block; max-width: 80px; max-height: 80px; }
pre { white-space: pre-wrap; background: #f7f7f7; padding: 4px 6px; margin: 3px 0; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 3px 0 10px;
               vertical-align: middle; }
"""

SCRIPT = """
const DATA = JSON.parse(document.getElementById('data').textContent);
const COLOURS = __COLOURS__;
const FILTERS = ['status', 'step', 'group', 'source', 'category', 'bucket'];
let sortKey = null, sortDown = true;

function colour(turn) { return COLOURS[turn % COLOURS.length]; }
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'style') Object.assign(node.style, value); else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}
function fmt(value, digits) {
  if (value === null || value === undefined) return '–';
  return typeof value === 'number' ? value.toFixed(digits) : String(value);
}

function setUpFilters() {
  const box = document.getElementById('filters');
  for (const key of FILTERS) {
    const values = [...new Set(DATA.episodes.map(e => e[key]).filter(v => v !== null
                                                                    && v !== undefined))];
    if (values.length < 2 && key !== 'status') continue;
    values.sort((a, b) => (typeof a === 'number' ? a - b : String(a).localeCompare(b)));
    const select = el('select', {id: 'filter-' + key});
    select.append(el('option', {value: ''}, 'all'));
    for (const value of values) select.append(el('option', {value: String(value)},
                                                 String(value)));
    select.addEventListener('change', drawTable);
    box.append(el('label', {}, key + ' ', select));
  }
}

function shown() {
  let episodes = DATA.episodes.filter(e => FILTERS.every(key => {
    const select = document.getElementById('filter-' + key);
    return !select || !select.value || String(e[key]) === select.value;
  }));
  if (sortKey) {
    episodes = [...episodes].sort((a, b) => ((a[sortKey] ?? -Infinity)
                                             - (b[sortKey] ?? -Infinity)) * (sortDown ? -1 : 1));
  }
  return episodes;
}

function drawTable() {
  const training = DATA.episodes.some(e => e.step !== null && e.step !== undefined);
  const columns = [['id', 'episode'], ...(training ? [['step', 'step']] : []),
                   ['group', 'group'], ['status', 'status'], ['reward', 'reward', 2],
                   ['turns', 'turns', 0], ['frames_viewed', 'frames', 0],
                   ['visual_tokens', 'visual tokens', 0], ['prediction', 'prediction'],
                   ['answer', 'truth']];
  const sortable = ['reward', 'turns', 'frames_viewed', 'visual_tokens'];
  const head = el('tr');
  for (const [key, title] of columns) {
    const th = el('th', sortable.includes(key) ? {class: 'sortable', 'data-sort': key} : {},
                  title + (sortKey === key ? (sortDown ? ' ▼' : ' ▲') : ''));
    if (sortable.includes(key)) th.addEventListener('click', () => {
      sortDown = sortKey === key ? !sortDown : true; sortKey = key; drawTable();
    });
    head.append(th);
  }
  const table = el('table', {id: 'episodes'}, head);
  const episodes = shown();
  for (const episode of episodes) {
    const row = el('tr', {class: 'episode', 'data-id': episode.id});
    for (const [key, , digits] of columns) {
      const cell = el('td', key === 'status' ? {class: episode.status} : {},
                      fmt(episode[key], digits));
      row.append(cell);
    }
    row.addEventListener('click', () => drawPanel(episode));
    table.append(row);
  }
  document.getElementById('count').textContent =
    episodes.length + ' of ' + DATA.episodes.length + ' episodes';
  document.getElementById('table').replaceChildren(table);
}

function timeline(episode, video) {
  const duration = episode.videos[video].duration_s || 1;
  const at = t => (100 * Math.min(Math.max(t / duration, 0), 1)) + '%';
  const bar = el('div', {class: 'timeline', 'data-video': video});
  for (const span of episode.relevant_spans || []) {
    if ((span.length > 2 ? span[2] : 0) !== video) continue;
    const width = `calc(${at(span[1])} - ${at(span[0])})`;
    bar.append(el('div', {class: 'rel', title: 'relevant ' + span[0] + '-' + span[1] + 's',
                          style: {left: at(span[0]), width: width}}));
  }
  episode.steps.forEach((step, i) => {
    for (const span of step.requested || []) {
      if (span[2] !== video) continue;
      bar.append(el('div', {class: 'req', title: `turn ${i + 1} asked for ${span[0]}-${span[1]}s`,
                            style: {left: at(span[0]), background: colour(i + 1),
                                    width: `calc(${at(span[1])} - ${at(span[0])})`}}));
    }
  });
  episode.views.forEach((frames, turn) => {
    for (const frame of frames) {
      if (frame.v !== video) continue;
      bar.append(el('div', {class: 'mark', title: `turn ${turn + 1}: ${frame.t.toFixed(1)}s`,
                            style: {left: at(frame.t), background: colour(turn)}}));
    }
  });
  bar.append(el('span', {class: 'ends', style: {left: 0}}, '0s'));
  bar.append(el('span', {class: 'ends', style: {right: 0}}, duration.toFixed(1) + 's'));
  return bar;
}

function drawPanel(episode) {
  const panel = el('div', {id: 'panel', 'data-id': episode.id});
  panel.append(el('h2', {}, episode.id + ' — ' + episode.status));
  panel.append(el('p', {}, episode.question || ''));
  if (episode.options && episode.options.length) {
    panel.append(el('p', {}, episode.options.map((o, i) => String.fromCharCode(65 + i)
                                                 + '. ' + o).join('   ')));
  }
  panel.append(el('p', {}, `truth: ${fmt(episode.answer)} · prediction: `
                           + `${fmt(episode.prediction)} · reward: ${fmt(episode.reward, 2)}`
                           + ` · visual tokens: ${fmt(episode.visual_tokens, 0)}`));
  if (episode.error) panel.append(el('pre', {}, 'failed: ' + episode.error));
  const legend = el('p', {class: 'legend'}, 'turns:');
  episode.views.forEach((_, turn) => legend.append(el('span', {style: {background: colour(turn)}}),
                                                  'turn ' + (turn + 1)));
  legend.append(el('span', {style: {background: 'rgba(60,170,60,.35)'}}), 'relevant');
  panel.append(legend);
  episode.videos.forEach((video, v) => {
    panel.append(el('div', {}, `video ${v + 1}: ${video.name} (${video.duration_s.toFixed(1)}s)`));
    panel.append(timeline(episode, v));
  });
  episode.views.forEach((frames, turn) => {
    const box = el('div', {class: 'turn', style: {borderColor: colour(turn)}});
    box.append(el('b', {}, `turn ${turn + 1}: ${frames.length} frames shown`));
    const thumbs = el('div', {class: 'thumbs'});
    for (const frame of frames) {
      thumbs.append(el('figure', {}, el('img', {src: frame.src,
                                               alt: `${frame.t.toFixed(1)}s`}),
                       (episode.videos.length > 1 ? `v${frame.v + 1} ` : '')
                       + frame.t.toFixed(1) + 's'));
    }
    box.append(thumbs);
    const step = episode.steps[turn];
    if (step) {
      box.append(el('pre', {}, step.response));
      const parts = Object.entries(step.reward_parts || {}).map(([k, v]) => `${k} ${fmt(v, 2)}`);
      box.append(el('div', {}, `action: ${step.action}${step.valid ? '' : ' (invalid)'} · `
                              + `reward ${fmt(step.reward, 2)}`
                              + (parts.length ? ` (${parts.join(', ')})` : '')));
      if (step.error) box.append(el('div', {class: 'invalid'}, 'env: ' + step.error));
      else if (step.feedback) box.append(el('div', {}, 'env: ' + step.feedback));
    }
    panel.append(box);
  });
  document.getElementById('panel').replaceWith(panel);
  panel.scrollIntoView();
}

document.getElementById('title').textContent += ' — ' + DATA.run;
setUpFilters();
drawTable();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vagen trajectories</title>
<style>__STYLE__</style></head>
<body>
<h1 id="title">vagen trajectories</h1>
<div id="filters"></div>
<div id="count"></div>
<div id="table"></div>
<div id="panel">Click an episode to see what the agent looked at.</div>
<script id="data" type="application/json">__DATA__</script>
<script>__SCRIPT__</script>
</body></html>
"""


def render(data: dict[str, Any]) -> str:
    """The page with `data` (run, kind, episodes) inside; `</` is escaped so no text in the
    data can close the script element."""
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    script = SCRIPT.replace("__COLOURS__", json.dumps(TURN_COLOURS))
    return (PAGE.replace("__STYLE__", STYLE).replace("__SCRIPT__", script)
            .replace("__DATA__", payload))
