'use strict';
// Draws docs/benchmarks.svg from an Express run and a logger run: Express
// req/s per variant, and logger lines/s for ambient and pino. Plain SVG, no
// dependencies.
// Usage: node benchmark/chart.js [--express results/X.json] [--logger results/Y.json]
//   (defaults: the latest runs recorded in BENCHMARKS.md)
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const results = path.join(__dirname, 'results');
const { values: files } = parseArgs({
  options: {
    express: { type: 'string', default: path.join(results, 'express-slots-2b7455b-node26.json') },
    logger: { type: 'string', default: path.join(results, 'logger-146871a.json') },
  },
});
const express = JSON.parse(fs.readFileSync(files.express, 'utf8'));
const logger = JSON.parse(fs.readFileSync(files.logger, 'utf8'));

const escape = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const fmt = (n) => Math.round(n).toLocaleString('en-US');

function bars(title, rows, x, y, width) {
  const max = Math.max(...rows.map((r) => r.value));
  const labelWidth = 250;
  const barArea = width - labelWidth - 240; // room for the longest label after a bar
  let svg = `<text x="${x}" y="${y}" font-size="16" font-weight="bold">${escape(title)}</text>`;
  rows.forEach((row, i) => {
    const top = y + 16 + i * 26;
    const w = Math.max(1, (row.value / max) * barArea);
    svg += `<text x="${x}" y="${top + 14}" font-size="13">${escape(row.label)}</text>`;
    svg += `<rect x="${x + labelWidth}" y="${top}" width="${w.toFixed(1)}" height="18" fill="${row.highlight ? '#2b7a3d' : '#8c8c8c'}"/>`;
    svg += `<text x="${x + labelWidth + w + 6}" y="${top + 14}" font-size="12">${escape(row.text)}</text>`;
  });
  return { svg, height: 16 + rows.length * 26 + 30 };
}

const width = 760;
let y = 30;
let body = '';
// A run may also hold an earlier build (ambient@DIR), for the tables only.
const expressRows = express.results.filter((r) => !r.variant.startsWith('ambient@')).map((r) => ({
  label: r.variant,
  value: r.rps,
  text: `${fmt(r.rps)} req/s${r.variant === 'bare' ? '' : ` (−${(r.overhead * 100).toFixed(1)}%)`}`,
  highlight: r.variant === 'ambient',
}));
let block = bars(`Express hello world, req/s (Node ${express.node}, ${express.connections} connections)`, expressRows, 20, y, width);
body += block.svg;
y += block.height;
// The logger's target (1.5× pino) concerns the message-only lines; the
// object rows are in BENCHMARKS.md.
const messageRows = logger.results.filter((r) => (r.shape ?? 'message') === 'message');
for (const destination of [...new Set(messageRows.map((r) => r.destination))]) {
  const rows = messageRows.filter((r) => r.destination === destination).flatMap((r) => [
    { label: `ambient (${r.node})`, value: r.ambient, text: `${fmt(r.ambient)} lines/s (${r.ratio.toFixed(2)}× pino)`, highlight: true },
    { label: `pino (${r.node})`, value: r.pino, text: `${fmt(r.pino)} lines/s`, highlight: false },
  ]);
  block = bars(`Logger throughput to ${destination}, lines/s`, rows, 20, y, width);
  body += block.svg;
  y += block.height;
}
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${body}</svg>\n`;
fs.mkdirSync(path.join(__dirname, '..', 'docs'), { recursive: true });
fs.writeFileSync(path.join(__dirname, '..', 'docs', 'benchmarks.svg'), svg);
console.log(`wrote docs/benchmarks.svg (${y}px tall)`);
