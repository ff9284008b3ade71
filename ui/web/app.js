// ferry console: plain DOM, no dependencies. Every string that comes from
// a bundle, a registry or the server is set as text (never as HTML).
'use strict';

const S = { lang: 'en_US', msgs: {}, session: null, es: null, route: '' };

// ---------- helpers ----------

function t(key, params) {
  let s = Object.prototype.hasOwnProperty.call(S.msgs, key) ? S.msgs[key] : key;
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
  return s;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v; // CSSOM: the CSP allows no style attributes
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, body) {
  const opts = { credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    opts.method = 'POST';
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (!r.ok && r.status !== 202) {
    const err = new Error((data && (data.detail || data.error)) || r.statusText);
    err.code = data && data.error;
    err.status = r.status;
    throw err;
  }
  return data;
}

function fmtSize(n) {
  if (n === undefined || n === null) return '';
  if (n < 1024) return Math.round(n) + ' B';
  const units = 'KMGTPE';
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return n.toFixed(1) + ' ' + units[i] + 'iB';
}

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toLocaleString(S.lang.replace('_', '-'), { hour12: false });
}

function fmtDuration(sec) {
  if (!isFinite(sec) || sec <= 0) return '';
  sec = Math.round(sec);
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  return (h ? h + 'h' : '') + (h || m ? m + 'm' : '') + s + 's';
}

function short(d) { return d && d.length > 19 ? d.slice(0, 19) : d || ''; }
function pct(done, total) { return total > 0 ? Math.min(100, Math.floor(done * 100 / total)) : 0; }

function bar(done, total, cls) {
  return el('div', { class: 'bar' + (cls ? ' ' + cls : '') }, el('div', { style: 'width:' + pct(done, total) + '%' }));
}

function badge(text, cls, attrs) { return el('span', Object.assign({ class: 'badge ' + (cls || '') }, attrs || {}), text); }

function stateBadge(state, id) {
  const cls = { running: 'run', ok: 'ok', failed: 'bad', canceled: 'bad' }[state] || '';
  return badge(t('ui.state.' + state), cls, { 'data-state': state, id });
}

function sigBadge(sig) {
  const cls = { valid: 'ok', invalid: 'bad', present: 'warn', none: 'muted' }[sig.state] || '';
  return badge(t('ui.sig.' + sig.state), cls, { title: sig.key || sig.error || '' });
}

function page(...children) {
  const main = document.getElementById('main');
  main.replaceChildren(...children.flat().filter(Boolean));
}

function errorBox(err) {
  return el('div', { class: 'error', role: 'alert' }, (err.code ? t('ui.err.' + err.code) + ': ' : ''), err.message);
}

function table(heads, rows, attrs) {
  return el('table', attrs || {},
    el('thead', {}, el('tr', {}, heads.map(h => el('th', { class: h.num ? 'num' : '' }, h.text !== undefined ? h.text : h)))),
    el('tbody', {}, rows));
}

// ---------- language ----------

async function loadMessages(lang) {
  const data = await api('/api/i18n?lang=' + encodeURIComponent(lang || ''));
  S.lang = data.lang;
  S.msgs = data.messages;
  document.documentElement.lang = S.lang.replace('_', '-');
  document.getElementById('lang').value = S.lang;
  document.querySelectorAll('[data-i18n]').forEach(e => { e.textContent = t(e.dataset.i18n); });
  document.title = t('ui.title');
}

async function switchLang(lang) {
  document.cookie = 'ferry_lang=' + encodeURIComponent(lang) + '; path=/; SameSite=Strict';
  await loadMessages(lang);
  render();
}

// ---------- routing ----------

function closeStream() {
  if (S.es) { S.es.close(); S.es = null; }
}

function render() {
  closeStream();
  const h = location.hash.replace(/^#\/?/, '') || 'bundles';
  const [name, ...rest] = h.split('/');
  const arg = decodeURIComponent(rest.join('/'));
  S.route = name;
  document.querySelectorAll('nav a').forEach(a => a.classList.toggle('active', a.dataset.nav === name));
  const pages = { bundles: pageBundles, bundle: pageBundle, upload: pageUpload, job: pageJob, jobs: pageJobs, save: pageSave, history: pageHistory };
  (pages[name] || pageBundles)(arg).catch(err => page(errorBox(err)));
}

function go(hash) {
  if (location.hash === hash) render(); else location.hash = hash;
}

// ---------- bundles ----------

async function pageBundles() {
  const l = await api('/api/bundles');
  const byFile = Object.fromEntries(l.bundles.map(b => [b.file, b]));
  const head = el('div', { class: 'chain-head' },
    el('h1', {}, t('ui.bundles.title')),
    el('span', { class: 'muted mono', id: 'dir' }, l.dir),
    el('button', { onclick: () => render() }, t('ui.refresh')));
  const out = [head];
  if (l.bundles.length === 0) out.push(el('p', { class: 'card', id: 'no-bundles' }, t('ui.bundles.none')));
  for (const ch of l.chains) out.push(chainCard(ch, byFile));
  if (l.unreadable.length) {
    out.push(el('div', { class: 'card' }, el('h2', { class: 'bad' }, t('ui.bundles.unreadable')),
      el('ul', { class: 'plain' }, l.unreadable.map(u => el('li', {}, el('span', { class: 'mono' }, u.file), ': ', u.error)))));
  }
  page(out);
}

function chainCard(ch, byFile) {
  const root = byFile[ch.root];
  const title = root ? t('ui.chain.of', { id: root.id }) : t('ui.chain.orphan', { id: ch.root });
  const status = ch.missing.length === 0
    ? badge(t('ui.chain.complete'), 'ok')
    : badge(t('ui.chain.missing', { n: ch.missing.length }), 'bad');
  const rows = ch.members.map(f => bundleRow(byFile[f], f !== ch.root));
  return el('section', { class: 'card chain', 'data-root': ch.root },
    el('div', { class: 'chain-head' }, el('h2', {}, title), status),
    ch.missing.length ? el('p', { class: 'bad' }, t('ui.chain.lacks') + ' ', ch.missing.map((m, i) => [i ? ', ' : '', el('span', { class: 'mono' }, m)])) : null,
    table([t('ui.col.bundle'), t('ui.col.type'), t('ui.col.created'), { text: t('ui.col.images'), num: true }, { text: t('ui.col.size'), num: true }, t('ui.col.signature'), t('ui.col.state'), ''], rows));
}

function bundleRow(b, sub) {
  const problems = b.parts.filter(p => p.state !== 'ok').length + b.bases.filter(x => x.state !== 'ok').length;
  return el('tr', { class: sub ? 'sub' : '', 'data-file': b.file },
    el('td', { class: 'mono' }, el('a', { href: '#/bundle/' + encodeURIComponent(b.file) }, b.id)),
    el('td', {}, t('ui.type.' + b.type), b.partial ? [' ', badge(t('ui.partial'), 'warn')] : null),
    el('td', {}, fmtTime(b.created)),
    el('td', { class: 'num' }, b.images),
    el('td', { class: 'num' }, fmtSize(b.size)),
    el('td', {}, sigBadge(b.signature)),
    el('td', {}, b.complete ? badge(t('ui.bundle.complete'), 'ok') : badge(t('ui.bundle.incomplete', { n: problems }), 'bad')),
    el('td', {}, el('div', { class: 'actions' },
      el('button', { 'data-action': 'verify', onclick: () => startVerify(b.file) }, t('ui.verify')),
      el('button', { class: 'primary', 'data-action': 'upload', onclick: () => go('#/upload/' + encodeURIComponent(b.file)) }, t('ui.upload')))));
}

async function startVerify(file) {
  try {
    const r = await api('/api/verify', { bundle: file });
    go('#/job/' + encodeURIComponent(r.id));
  } catch (err) { alert(err.message); }
}

// ---------- one bundle ----------

async function pageBundle(file) {
  const [d, list] = await Promise.all([api('/api/bundles/' + encodeURIComponent(file)), api('/api/bundles')]);
  const b = d.bundle;
  const facts = el('dl', { class: 'facts' },
    fact(t('ui.col.type'), [t('ui.type.' + b.type), b.partial ? [' ', badge(t('ui.partial'), 'warn')] : null]),
    fact(t('ui.col.created'), fmtTime(b.created)),
    fact(t('ui.bundle.tool'), b.tool),
    fact(t('ui.bundle.compression'), b.compression),
    fact(t('ui.bundle.platforms'), b.platforms.length ? b.platforms.join(', ') : t('ui.all')),
    fact(t('ui.col.size'), t('ui.bundle.sizeParts', { size: fmtSize(b.size), n: b.parts.length })),
    fact(t('ui.bundle.blobs'), t('ui.bundle.blobsStored', { n: b.blobs, size: fmtSize(b.blobBytes), base: b.baseBlobs })),
    fact(t('ui.col.signature'), sigBadge(b.signature)),
    fact(t('ui.bundle.file'), el('span', { class: 'mono' }, b.file)));
  const out = [
    el('h1', {}, b.id),
    el('div', { class: 'card' }, facts, el('div', { class: 'actions', style: 'margin-top:10px' },
      el('button', { 'data-action': 'verify', onclick: () => startVerify(b.file) }, t('ui.verify')),
      el('button', { class: 'primary', 'data-action': 'upload', onclick: () => go('#/upload/' + encodeURIComponent(b.file)) }, t('ui.upload')))),
  ];
  if (b.bases.length) out.push(basesCard(b));
  if (b.failed.length) {
    out.push(el('div', { class: 'card' }, el('h2', { class: 'warn' }, t('ui.bundle.failedAtSave')),
      el('ul', { class: 'plain' }, b.failed.map(f => el('li', {}, el('span', { class: 'mono' }, f.image), ': ', f.error)))));
  }
  out.push(el('h2', {}, t('ui.bundle.images', { n: d.detail.images.length })));
  out.push(table([t('ui.col.source'), t('ui.col.target'), t('ui.col.digest'), t('ui.bundle.platforms'), { text: t('ui.bundle.blobs'), num: true }, { text: t('ui.col.size'), num: true }],
    d.detail.images.map(i => el('tr', {},
      el('td', { class: 'mono' }, i.source), el('td', { class: 'mono' }, i.target), el('td', { class: 'mono', title: i.digest }, short(i.digest)),
      el('td', {}, i.platforms.length ? i.platforms.join(', ') : '-'),
      el('td', { class: 'num' }, i.baseBlobs ? t('ui.bundle.blobsInBase', { n: i.blobs, base: i.baseBlobs }) : i.blobs),
      el('td', { class: 'num' }, fmtSize(i.bytes)))), { id: 'images' }));
  out.push(el('h2', {}, t('ui.bundle.referrers', { n: d.detail.referrers.length })));
  out.push(d.detail.referrers.length === 0 ? el('p', { class: 'muted' }, t('ui.bundle.noReferrers')) :
    table([t('ui.col.image'), t('ui.bundle.subject'), t('ui.bundle.artifactType'), t('ui.col.digest'), { text: t('ui.col.size'), num: true }, t('ui.bundle.tag')],
      d.detail.referrers.map(r => el('tr', {},
        el('td', { class: 'mono' }, r.image), el('td', { class: 'mono' }, short(r.subject)), el('td', { class: 'mono' }, r.artifactType),
        el('td', { class: 'mono' }, short(r.digest)), el('td', { class: 'num' }, fmtSize(r.size)), el('td', { class: 'mono' }, r.tag || '-')))));
  out.push(el('h2', {}, t('ui.bundle.parts')));
  out.push(table([t('ui.col.part'), { text: t('ui.col.size'), num: true }, 'sha256', t('ui.col.state')],
    b.parts.map(p => el('tr', {}, el('td', { class: 'mono' }, p.name), el('td', { class: 'num' }, fmtSize(p.size)), el('td', { class: 'mono' }, p.sha256),
      el('td', {}, p.state === 'ok' ? badge(t('ui.part.ok'), 'ok') : badge(t('ui.part.' + p.state), 'bad'))))));
  out.push(diffCard(b, list.bundles));
  page(el('div', { id: 'bundle', 'data-file': b.file }, out));
}

function fact(k, v) { return [el('dt', {}, k), el('dd', {}, v)]; }

function basesCard(b) {
  return el('div', { class: 'card' }, el('h2', {}, t('ui.bundle.bases')),
    el('p', { class: 'hint' }, t('ui.bundle.basesHint')),
    el('ul', { class: 'plain' }, b.bases.map(x => el('li', {},
      x.file ? el('a', { class: 'mono', href: '#/bundle/' + encodeURIComponent(x.file) }, x.id) : el('span', { class: 'mono' }, x.id), ' ',
      badge(t('ui.base.' + x.state), x.state === 'ok' ? 'ok' : 'bad')))));
}

function diffCard(b, all) {
  const others = all.filter(o => o.file !== b.file);
  const sel = el('select', { id: 'diff-with' },
    b.bases.some(x => x.state === 'ok') ? el('option', { value: '' }, t('ui.diff.base')) : null,
    others.map(o => el('option', { value: o.file }, o.id)));
  const out = el('div', { id: 'diff-out' });
  const show = async () => {
    try {
      const q = '/api/diff?new=' + encodeURIComponent(b.file) + (sel.value ? '&old=' + encodeURIComponent(sel.value) : '');
      out.replaceChildren(diffView(await api(q)));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  return el('div', { class: 'card' }, el('h2', {}, t('ui.diff.title')),
    others.length === 0 ? el('p', { class: 'muted' }, t('ui.diff.nothing')) :
      [el('div', { class: 'actions' }, el('label', {}, t('ui.diff.with'), ' ', sel), el('button', { onclick: show, 'data-action': 'diff' }, t('ui.diff.show'))), out]);
}

function diffView(d) {
  const rows = [];
  for (const a of d.added) rows.push(el('tr', {}, el('td', {}, badge(t('ui.diff.added'), 'ok')), el('td', { class: 'mono' }, a.name), el('td', {}), el('td', { class: 'mono' }, short(a.newDigest))));
  for (const c of d.changed) rows.push(el('tr', {}, el('td', {}, badge(t('ui.diff.changed'), 'warn')), el('td', { class: 'mono' }, c.name), el('td', { class: 'mono' }, short(c.oldDigest)), el('td', { class: 'mono' }, short(c.newDigest))));
  for (const r of d.removed) rows.push(el('tr', {}, el('td', {}, badge(t('ui.diff.removed'), 'bad')), el('td', { class: 'mono' }, r.name), el('td', { class: 'mono' }, short(r.oldDigest)), el('td', {})));
  return el('div', {},
    d.placeholder ? el('p', { class: 'note' }, t('ui.diff.placeholder')) : null,
    el('p', {}, t('ui.diff.summary', { old: d.old, new: d.new, added: d.added.length, changed: d.changed.length, removed: d.removed.length, same: d.unchanged })),
    el('p', {}, t('ui.diff.blobs', { added: d.blobsAdded, addedSize: fmtSize(d.bytesAdded), removed: d.blobsRemoved, removedSize: fmtSize(d.bytesRemoved) })),
    rows.length ? table(['', t('ui.col.image'), t('ui.diff.old'), t('ui.diff.new')], rows) : el('p', { class: 'muted' }, t('ui.diff.same')));
}

// ---------- upload ----------

async function pageUpload(file) {
  const d = await api('/api/bundles/' + encodeURIComponent(file));
  const b = d.bundle;
  const targets = S.session.targets;
  const other = el('input', { type: 'text', id: 'target-other', placeholder: 'registry.local:5000/mirror', style: 'display:none' });
  const sel = el('select', { id: 'target' },
    targets.map(x => el('option', { value: x.name, selected: x.default }, x.docker ? t('ui.upload.docker', { where: x.where }) : x.name + (x.where && x.where !== x.name ? ' — ' + x.where : ''))),
    el('option', { value: '' }, t('ui.upload.other')));
  const platform = el('input', { type: 'text', id: 'platform', placeholder: t('ui.upload.platformHost') });
  const platRow = el('div', { class: 'row' }, el('label', { for: 'platform' }, t('ui.upload.platform')), platform);
  const sync = () => {
    other.style.display = sel.value === '' ? '' : 'none';
    const tg = targets.find(x => x.name === sel.value);
    platRow.style.display = tg && tg.docker ? '' : 'none';
  };
  sel.addEventListener('change', sync);
  const keep = el('input', { type: 'checkbox', id: 'keep-going' });
  const err = el('div');
  const start = async (ev) => {
    ev.preventDefault();
    const target = sel.value || other.value.trim();
    if (!target) { err.replaceChildren(errorBox(new Error(t('ui.upload.needTarget')))); return; }
    try {
      const r = await api('/api/upload', { bundle: b.file, target, keepGoing: keep.checked, platform: platform.value.trim() });
      go('#/job/' + encodeURIComponent(r.id));
    } catch (e) { err.replaceChildren(errorBox(e)); }
  };
  const form = el('form', { class: 'card', onsubmit: start },
    el('div', { class: 'row' }, el('label', { for: 'target' }, t('ui.upload.target')), sel, other,
      el('span', { class: 'hint' }, t('ui.upload.credentials'))),
    platRow,
    el('div', { class: 'row inline' }, keep, el('label', { for: 'keep-going' }, t('ui.upload.keepGoing'))),
    b.type !== 'full' ? el('p', { class: 'note' }, t('ui.upload.incrNote', { bases: b.bases.map(x => x.id).join(', ') })) : null,
    !b.complete ? el('p', { class: 'error' }, t('ui.upload.incomplete')) : null,
    err,
    el('button', { class: 'primary', type: 'submit', id: 'start-upload' }, t('ui.upload.start')));
  page(el('h1', {}, t('ui.upload.title', { id: b.id })), form);
  sync();
}

// ---------- jobs ----------

function jobTitle(j) {
  const args = { bundle: (j.bundle || '').replace(/_meta\.yaml$/, ''), target: j.target || '' };
  return t('ui.job.' + j.kind + (j.target ? 'To' : ''), args);
}

async function pageJob(id) {
  const box = el('div', { id: 'job', 'data-job': id });
  page(box);
  const first = await api('/api/jobs/' + encodeURIComponent(id));
  drawJob(box, first);
  if (first.state !== 'running') return;
  const es = new EventSource('/api/jobs/' + encodeURIComponent(id) + '/events');
  S.es = es;
  es.onmessage = (ev) => { if (S.es === es) drawJob(box, JSON.parse(ev.data)); };
  es.addEventListener('end', () => { es.close(); if (S.es === es) S.es = null; });
}

function mark(state) {
  const m = { ok: ['✓', 'ok'], failed: ['✗', 'bad'], run: ['…', 'run'], wait: ['·', 'muted'], skip: ['–', 'muted'] }[state];
  return el('span', { class: 'mark ' + m[1] }, m[0]);
}

function drawJob(box, j) {
  const p = j.progress;
  const order = ['check', 'transfer', 'finish', 'done'];
  const at = order.indexOf(j.phase);
  // a finished job's phase is where it ended: that step failed
  const stepState = (i) => {
    if (j.state === 'ok' || at > i) return 'ok';
    if (j.baseCheck === 'failed') return i === 0 ? 'ok' : 'skip';
    if (at === i) return j.state === 'running' ? 'run' : 'failed';
    return j.state === 'running' ? 'wait' : 'skip';
  };
  const steps = [el('li', { 'data-step': 'check' }, mark(stepState(0)), t('ui.step.check.' + j.kind))];
  if (j.kind === 'upload') {
    const bc = j.baseCheck || 'none';
    const st = { ok: 'ok', failed: 'failed', pending: j.state === 'running' ? 'run' : 'skip', none: 'skip' }[bc];
    steps.push(el('li', { 'data-step': 'base', 'data-base': bc }, mark(st), t('ui.step.base.' + bc)));
  }
  steps.push(el('li', { 'data-step': 'transfer' }, mark(stepState(1)),
    t('ui.step.transfer.' + j.kind, { done: p.finished, items: p.items, bytes: fmtSize(p.done), total: fmtSize(p.total) })));
  if (j.kind !== 'verify') steps.push(el('li', { 'data-step': 'finish' }, mark(stepState(2)), t('ui.step.finish.' + j.kind)));
  const rate = j.state === 'running' && p.rate > 0 ? t('ui.job.rate', { rate: fmtSize(p.rate), eta: fmtDuration(p.eta) || '–' }) : '';
  const total = el('div', { class: 'total', id: 'total', 'data-done': p.done, 'data-total': p.total, 'data-finished': p.finished, 'data-items': p.items },
    bar(p.done, p.total, 'big'),
    el('div', { class: 'hint' }, t('ui.job.bytes', { done: fmtSize(p.done), total: fmtSize(p.total), n: p.finished, items: p.items, pct: pct(p.done, p.total) }), ' ', rate));
  const active = p.active.length ? el('div', { class: 'transfers', id: 'active' },
    p.active.map(a => [el('span', { class: 'mono' }, a.label), bar(a.done, a.size), el('span', { class: 'num' }, fmtSize(a.done) + ' / ' + fmtSize(a.size))])) : null;
  const buttons = el('div', { class: 'actions' },
    j.state === 'running' ? el('button', { id: 'cancel', onclick: () => api('/api/jobs/' + encodeURIComponent(j.id) + '/cancel', {}).catch(e => alert(e.message)) }, t('ui.job.cancel')) : null,
    j.state === 'failed' || j.state === 'canceled' ? el('button', { class: 'primary', id: 'retry', onclick: () => retryJob(j.id) }, t('ui.job.retry')) : null,
    j.bundle ? el('a', { class: 'button', href: '#/bundle/' + encodeURIComponent(j.bundle) }, t('ui.job.toBundle')) : null);
  const logLines = j.log || [];
  const log = el('details', { open: j.state !== 'ok' && logLines.length > 0 },
    el('summary', {}, t('ui.job.log', { n: logLines.length })), el('pre', { class: 'log' }, logLines.join('\n')));
  box.replaceChildren(...[
    el('div', { class: 'chain-head' }, el('h1', {}, jobTitle(j)), stateBadge(j.state, 'job-state')),
    el('p', { class: 'muted' }, t('ui.job.started', { time: fmtTime(j.started) }), j.retryOf ? ' · ' + t('ui.job.retryOf', { id: j.retryOf }) : '',
      j.state === 'running' ? ' · ' + t('ui.job.keepsRunning') : ''),
    el('div', { class: 'card' }, el('ol', { class: 'steps' }, steps), total, active),
    j.state !== 'running' ? resultCard(j) : null,
    buttons, log].filter(Boolean));
}

async function retryJob(id) {
  try {
    const r = await api('/api/jobs/' + encodeURIComponent(id) + '/retry', {});
    go('#/job/' + encodeURIComponent(r.id));
  } catch (e) { alert(e.message); }
}

function resultCard(j) {
  const r = j.result || {};
  const body = [];
  if (j.state === 'ok') {
    if (j.kind === 'upload') body.push(el('p', {}, t('ui.result.upload', { images: r.images, manifests: r.manifests, pushed: r.blobsPushed, bytes: fmtSize(r.bytesPushed), skipped: r.blobsSkipped, mounted: r.blobsMounted })));
    if (j.kind === 'verify') body.push(el('p', {}, t('ui.result.verify')));
    if (j.kind === 'save') body.push(el('p', {}, t('ui.result.save', { id: r.id, images: r.images, blobs: r.blobs, bytes: fmtSize(r.blobBytes), skipped: r.skipped })));
  } else {
    body.push(el('p', {}, j.state === 'canceled' ? t('ui.result.canceled') : t('ui.result.failed.' + j.kind)));
    if (j.errorCode === 'base-missing') {
      body.push(el('p', {}, t('ui.result.baseMissing')), el('ul', { class: 'plain', id: 'base-missing' }, (r.baseMissing || []).map(id => el('li', { class: 'mono' }, id))));
    }
    if (j.problems && j.problems.length) {
      body.push(el('ul', { class: 'plain', id: 'problems' }, j.problems.map(p => el('li', { class: 'mono' }, p))));
    } else if (r.failed && r.failed.length) {
      body.push(el('ul', { class: 'plain', id: 'failures' }, r.failed.map(f => el('li', {}, el('span', { class: 'mono' }, f.image), ': ', f.error))));
    } else if (j.error) {
      body.push(el('p', { class: 'mono', id: 'error' }, j.error));
    }
    if (j.kind === 'upload') body.push(el('p', { class: 'hint' }, t('ui.result.retryHint')));
  }
  return el('div', { class: 'card result ' + j.state, id: 'result', 'data-state': j.state },
    el('h2', {}, t('ui.result.title.' + j.state)), body);
}

async function pageJobs() {
  const list = await api('/api/jobs');
  page(el('h1', {}, t('ui.jobs.title')), el('p', { class: 'hint' }, t('ui.jobs.hint')),
    list.length === 0 ? el('p', { class: 'card' }, t('ui.jobs.none')) :
      table([t('ui.col.job'), t('ui.col.state'), { text: t('ui.col.progress'), num: true }, t('ui.col.started')],
        list.map(j => el('tr', { 'data-job': j.id },
          el('td', {}, el('a', { href: '#/job/' + encodeURIComponent(j.id) }, jobTitle(j))),
          el('td', {}, stateBadge(j.state)),
          el('td', { class: 'num' }, pct(j.progress.done, j.progress.total) + '%'),
          el('td', {}, fmtTime(j.started))))));
}

// ---------- save ----------

async function pageSave() {
  const l = await api('/api/bundles');
  const images = el('textarea', { id: 'images', placeholder: 'registry.example.com/library/alpine:3.19\nregistry.example.com/team/app:1 -> team/app:stable', spellcheck: 'false' });
  const fileIn = el('input', { type: 'file', accept: '.txt,.lst,.list,text/plain' });
  fileIn.addEventListener('change', async () => { if (fileIn.files[0]) images.value = await fileIn.files[0].text(); });
  const plats = el('input', { type: 'text', id: 'platforms', placeholder: 'linux/amd64,linux/arm64' });
  const comp = el('select', { id: 'compression' }, ['none', 'zstd', 'gzip', 'lz4', 'xz'].map(c => el('option', { value: c }, c)));
  const bases = l.bundles.map(b => el('label', {}, el('input', { type: 'checkbox', value: b.file, 'data-base': b.file }), ' ', el('span', { class: 'mono' }, b.id)));
  const keep = el('input', { type: 'checkbox', id: 'save-keep-going' });
  const err = el('div');
  const start = async (ev) => {
    ev.preventDefault();
    const req = {
      images: images.value,
      platforms: plats.value.split(',').map(s => s.trim()).filter(Boolean),
      compression: comp.value,
      bases: bases.map(b => b.querySelector('input')).filter(i => i.checked).map(i => i.value),
      keepGoing: keep.checked,
    };
    try {
      const r = await api('/api/save', req);
      go('#/job/' + encodeURIComponent(r.id));
    } catch (e) { err.replaceChildren(errorBox(e)); }
  };
  page(el('h1', {}, t('ui.save.title')),
    el('p', { class: 'hint' }, t('ui.save.hint', { dir: l.dir })),
    el('form', { class: 'card', onsubmit: start },
      el('div', { class: 'row' }, el('label', { for: 'images' }, t('ui.save.images')), images, el('span', {}, t('ui.save.loadFile'), ' ', fileIn),
        el('span', { class: 'hint' }, t('ui.save.listHint'))),
      el('div', { class: 'row' }, el('label', { for: 'platforms' }, t('ui.save.platforms')), plats),
      el('div', { class: 'row' }, el('label', { for: 'compression' }, t('ui.save.compression')), comp),
      el('div', { class: 'row' }, el('span', {}, t('ui.save.bases')), bases.length ? el('div', { class: 'checks' }, bases) : el('span', { class: 'muted' }, t('ui.save.noBases')),
        el('span', { class: 'hint' }, t('ui.save.basesHint'))),
      el('div', { class: 'row inline' }, keep, el('label', { for: 'save-keep-going' }, t('ui.save.keepGoing'))),
      err,
      el('button', { class: 'primary', type: 'submit', id: 'start-save' }, t('ui.save.start'))));
}

// ---------- history ----------

async function pageHistory() {
  const recs = await api('/api/history');
  const summary = (r) => {
    const x = r.result || {};
    if (r.state !== 'ok') return r.errorCode === 'base-missing' ? t('ui.result.baseMissing') : (r.problems && r.problems[0]) || r.error || '';
    if (r.kind === 'upload') return t('ui.history.upload', { pushed: x.blobsPushed, bytes: fmtSize(x.bytesPushed), skipped: x.blobsSkipped });
    if (r.kind === 'save') return t('ui.history.save', { images: x.images, bytes: fmtSize(x.blobBytes) });
    return t('ui.result.verify');
  };
  page(el('h1', {}, t('ui.history.title')), el('p', { class: 'note' }, t('ui.history.placeholder')),
    recs.length === 0 ? el('p', { class: 'card' }, t('ui.history.none')) :
      table([t('ui.col.ended'), t('ui.col.job'), t('ui.col.state'), t('ui.col.summary')],
        recs.map(r => el('tr', { 'data-job': r.job },
          el('td', {}, fmtTime(r.ended)), el('td', {}, jobTitle(r)), el('td', {}, stateBadge(r.state)), el('td', { class: 'mono' }, summary(r))))));
}

// ---------- start ----------

async function start() {
  if (location.search) history.replaceState(null, '', '/' + location.hash); // the token leaves the address bar
  document.getElementById('lang').addEventListener('change', (e) => switchLang(e.target.value));
  S.session = await api('/api/session');
  await loadMessages(S.session.lang);
  document.getElementById('footer').textContent = 'ferry ' + (S.session.version || '') + ' · ' + S.session.dir;
  window.addEventListener('hashchange', render);
  render();
}

start().catch(err => page(errorBox(err)));
