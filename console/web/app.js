// The kura console: fetches what the CLI fetches, verifies it here with
// kura's own Go checks (kura.wasm), and shows it in English or Japanese.
'use strict';

let lang = localStorage.getItem('kura.lang') === 'ja' ? 'ja' : 'en';
let checks = null; // globalThis.kura once kura.wasm runs
let rerender = () => {};
let me = null; // {name, fingerprint} of the identity loaded into kura.wasm
let shown = null; // {id, answer} of the collaboration on the page
let notice = null; // [key, ...args] of the last approval's outcome
let opened = null; // the result open on the page (kura.openResult's answer)
let logView = null; // kura.browseLog's answer
let vault = null; // {bytes, name, release} of the file sealed last
let countdown = 0; // the countdown's interval
let vaultProgram = null; // a Promise of globalThis.kuraVault, once asked for

function t(key, ...args) {
  const s = (kuraText[lang] && kuraText[lang][key]) || kuraText.en[key] || key;
  return s.replace(/\{(\d+)\}/g, (_, i) => String(args[Number(i)] ?? ''));
}

function $(sel) { return document.querySelector(sel); }

// checkText is a check line of kura's Go code in the page's language.
function checkText(line) {
  if (lang !== 'ja') return line;
  for (const [re, ja] of kuraChecksJa) {
    if (re.test(line)) return line.replace(re, ja);
  }
  return line;
}

function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function setLang(l) {
  lang = l;
  localStorage.setItem('kura.lang', l);
  document.documentElement.lang = l;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll('[data-i18n-label]')) e.setAttribute('aria-label', t(e.dataset.i18nLabel));
  for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === l));
  document.title = 'kura ' + t('title');
  showChecks();
  showIdentity();
  rerender();
  if (opened) renderResult();
  renderLog();
}

function showChecks() {
  const b = $('#checks');
  if (checks === null && !globalThis.kuraChecksFailed) return; // still loading
  b.dataset.i18n = checks ? 'checks.ready' : 'checks.missing';
  b.textContent = t(b.dataset.i18n);
  b.classList.toggle('warn', !checks);
}

async function loadChecks() {
  try {
    if (typeof Go === 'undefined') throw new Error('no wasm_exec.js');
    const go = new Go();
    const r = await WebAssembly.instantiateStreaming(fetch('kura.wasm'), go.importObject);
    go.run(r.instance); // runs until the page closes
    checks = globalThis.kura;
  } catch (e) {
    globalThis.kuraChecksFailed = true;
  }
  showChecks();
  route();
}

function showIdentity() {
  const p = $('#signed-in');
  p.textContent = me ? t('sign.as', me.name, me.fingerprint.slice(0, 16)) : t('sign.none');
  $('#forget').hidden = !me;
}

async function loadIdentity(input) {
  const file = input.files[0];
  input.value = ''; // the page keeps no copy of the file
  if (!file || !checks) return;
  const answer = JSON.parse(checks.loadIdentity(await file.text()));
  if (!answer.ok) {
    me = null;
    showIdentity();
    showError(t('sign.bad', answer.error));
    return;
  }
  me = answer.result;
  $('#error').hidden = true;
  showIdentity();
  rerender();
}

function forgetIdentity() {
  if (checks) checks.forgetIdentity();
  me = null;
  showIdentity();
  rerender();
}

async function approve() {
  const id = shown.id;
  notice = null;
  try {
    const file = await getJSONText('/v1/collaborations/' + encodeURIComponent(id));
    const a = JSON.parse(checks.approve(file));
    if (!a.ok) throw new Error(a.error);
    const r = await fetch(a.result.path, {
      method: 'PUT', body: a.result.file,
      headers: { 'Content-Type': 'application/json', Authorization: a.result.authorization },
    });
    if (!r.ok) {
      const text = await r.text();
      let detail = text;
      try { detail = JSON.parse(text).detail || detail; } catch (_) {}
      throw new Error(t('error.server', r.status, detail));
    }
    notice = ['approve.done', me.name, shown.answer.result.versions];
  } catch (e) {
    await showCollaboration(id);
    showError(t('approve.failed', e.message));
    return;
  }
  await showCollaboration(id);
}

function showError(message) {
  const p = $('#error');
  p.textContent = message;
  p.hidden = false;
}

async function getJSONText(path) {
  let r;
  try {
    r = await fetch(path, { headers: { Accept: 'application/json' } });
  } catch (e) {
    throw new Error(t('error.network', e.message));
  }
  const text = await r.text();
  if (!r.ok) {
    let detail = text;
    try { detail = JSON.parse(text).detail || detail; } catch (_) {}
    const err = new Error(t('error.server', r.status, detail));
    err.status = r.status;
    throw err;
  }
  return text;
}

async function showCollaboration(id) {
  $('#error').hidden = true;
  $('#collab').hidden = true;
  $('#collab-id').value = id;
  if (!checks) return;
  let file;
  try {
    file = await getJSONText('/v1/collaborations/' + encodeURIComponent(id));
  } catch (e) {
    rerender = () => showError(e.status === 404 ? t('error.notFound', id) : e.message);
    rerender();
    return;
  }
  const answer = JSON.parse(checks.verifyCollaboration(file));
  const versions = JSON.parse(checks.history(file));
  shown = { id, answer };
  let runs = null;
  try {
    runs = JSON.parse(await getJSONText('/v1/runs?collaboration=' + encodeURIComponent(id))).runs;
  } catch (_) {}
  rerender = () => {
    renderCollaboration(id, answer, runs);
    renderHistory(versions);
  };
  rerender();
}

function renderCollaboration(id, answer, runs) {
  $('#collab').hidden = false;
  $('#collab-title').textContent = t('collab.title', id);
  const verdict = $('#collab-verdict');
  const facts = $('#collab-facts');
  const parties = $('#parties tbody');
  facts.replaceChildren();
  parties.replaceChildren();
  if (!answer.ok) {
    verdict.textContent = t('collab.invalid', answer.error);
    verdict.className = 'bad';
    $('#parties').hidden = true;
    $('#terms').hidden = true;
    $('#approve').hidden = true;
  } else {
    const c = answer.result;
    const ready = c.parties.every((p) => !p.required || p.state === 'approved');
    verdict.textContent = t('collab.verified') + (lang === 'ja' ? '' : ' ') + t(ready ? 'collab.ready' : 'collab.notReady') +
      (notice ? (lang === 'ja' ? '' : ' ') + t(...notice) : '');
    verdict.className = ready ? 'good' : 'warn';
    for (const [k, v] of [['facts.versions', c.versions], ['facts.hash', c.manifest_hash]]) {
      facts.append(el('dt', t(k)), el('dd', String(v)));
    }
    $('#parties').hidden = false;
    $('#terms').hidden = false;
    renderTerms(c.manifest);
    const mine = me && c.parties.find((p) => p.party === me.name);
    const button = $('#approve');
    button.hidden = !mine || mine.state === 'approved';
    button.textContent = t('approve.button', c.versions, me ? me.name : '');
    for (const p of c.parties) {
      const tr = el('tr');
      tr.append(el('th', p.party, { scope: 'row' }), el('td', t(p.required ? 'yes' : 'no')),
        el('td', t('state.' + p.state), { class: 'state-' + p.state }), el('td', partyDetail(p)));
      parties.append(tr);
    }
  }
  const body = $('#runs tbody');
  body.replaceChildren();
  if (!runs || runs.length === 0) {
    const tr = el('tr');
    tr.append(el('td', t('runs.none'), { colspan: '6' }));
    body.append(tr);
    return;
  }
  for (const r of runs) {
    const tr = el('tr');
    tr.append(el('th', r.id, { scope: 'row' }), el('td', r.analysis), el('td', kuraText.en['run.' + r.state] ? t('run.' + r.state) : r.state),
      el('td', new Date(r.submitted_at).toLocaleString(lang)), el('td', r.worker || ''));
    const cell = el('td');
    if (r.state === 'completed' && r.result) {
      const b = el('button', t('runs.result'), { type: 'button', 'aria-label': t('runs.open', r.id), 'data-run': r.id });
      b.addEventListener('click', () => openResult(r));
      cell.append(b);
    }
    tr.append(cell);
    body.append(tr);
  }
}

async function openResult(run) {
  $('#error').hidden = true;
  if (!me) {
    showError(t('result.needIdentity'));
    return;
  }
  let answer;
  let receiptFile = '', receiptError = '';
  try {
    if (run.receipt) receiptFile = await getJSONText('/v1/cleanroom/receipts/' + encodeURIComponent(run.receipt));
  } catch (e) {
    receiptError = e.message; // the result opens without it
  }
  try {
    const file = await getJSONText('/v1/cleanroom/results/' + encodeURIComponent(run.result));
    answer = JSON.parse(await checks.openResult(file, receiptFile, $('#dev').checked));
  } catch (e) {
    answer = { ok: false, error: e.message };
  }
  if (!answer.ok) {
    opened = null;
    $('#result').hidden = true;
    showError(t('result.failed', answer.error));
    return;
  }
  opened = answer.result;
  if (receiptError) opened.receipt_error = receiptError;
  if ($('#log-key').value.trim()) await browseLog(); // for the run's key releases
  renderResult();
  $('#result-title').scrollIntoView();
}

function renderReceipt() {
  const r = opened.receipt;
  $('#receipt').hidden = !r && !opened.receipt_error;
  if (!r && !opened.receipt_error) return;
  const verdict = $('#receipt-verdict');
  const body = $('#receipt-table tbody');
  if (!r) {
    verdict.textContent = t('receipt.failed', opened.receipt_error);
    verdict.className = 'bad';
    body.replaceChildren();
    $('#receipt-checks').replaceChildren();
    return;
  }
  verdict.textContent = t('receipt.ok', new Date(r.destroyed_at).toLocaleString(lang), r.outcome);
  verdict.className = 'good';
  body.replaceChildren(...r.destroyed.map((d) => {
    const tr = el('tr');
    tr.append(el('th', d.dataset, { scope: 'row' }), el('td', t(d.key_released ? 'yes' : 'no')), el('td', String(d.plaintext_bytes)));
    return tr;
  }));
  $('#receipt-checks').replaceChildren(...r.checks.map((c) => el('li', checkText(c))));
}

function renderResult() {
  const r = opened;
  $('#result').hidden = false;
  $('#result-title').textContent = t('result.title', r.collaboration, r.analysis, r.run);
  $('#result-insecure').hidden = !r.insecure;
  $('#result-attested').replaceChildren(...[['attested.tee', r.tee], ['attested.measurement', r.measurement],
    ['attested.status', r.status], ['attested.verifier', r.verifier]].flatMap(([k, v]) => [el('dt', t(k)), el('dd', v)]));
  $('#result-checks').replaceChildren(...r.checks.map((c) => el('li', checkText(c))));
  const table = $('#result-table');
  table.querySelector('caption').textContent = t('result.caption');
  table.querySelector('thead tr').replaceChildren(...r.columns.map((c) => el('th', c, { scope: 'col' })));
  table.querySelector('tbody').replaceChildren(...r.rows.map((row) => {
    const tr = el('tr');
    tr.append(...row.map((v) => el('td', v)));
    return tr;
  }));
  $('#result-suppressed').textContent = t('result.suppressed', r.suppressed_rows);
  const releases = logView && logView.ok ? logView.result.entries.filter((e) => e.kind === 'key_release' && e.run === r.run) : [];
  $('#result-releases').textContent = releases.length === 0 ? t('releases.none') :
    t('releases.some', releases.map((e) => t('releases.one', e.resource, t('decision.' + e.decision), new Date(e.time).toLocaleString(lang), e.index)).join('; '));
  drawChart(r);
  renderReceipt();
}

// drawChart draws the first numeric column after the first as horizontal
// bars labelled by the first column.
function drawChart(r) {
  const col = r.columns.findIndex((_, i) => i > 0 && r.rows.length > 0 &&
    r.rows.every((row) => row[i] !== '' && Number.isFinite(Number(row[i]))));
  $('#result-chart-figure').hidden = col < 0;
  if (col < 0) return;
  const ns = 'http://www.w3.org/2000/svg';
  const values = r.rows.map((row) => Number(row[col]));
  const max = Math.max(...values, 0) || 1;
  const barH = 22, labelW = 170, width = 760;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${r.rows.length * barH + 8}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', t('result.chart', r.columns[col], r.columns[0]));
  const text = (x, y, s, anchor) => {
    const e = document.createElementNS(ns, 'text');
    e.setAttribute('x', x);
    e.setAttribute('y', y);
    e.setAttribute('text-anchor', anchor);
    e.textContent = s;
    return e;
  };
  r.rows.forEach((row, i) => {
    const y = i * barH + 4;
    const w = Math.max(0, (width - labelW - 90) * values[i] / max);
    const bar = document.createElementNS(ns, 'rect');
    for (const [k, v] of [['x', labelW], ['y', y], ['width', w], ['height', barH - 6], ['class', 'bar']]) bar.setAttribute(k, v);
    svg.append(text(labelW - 6, y + 13, row[0], 'end'), bar, text(labelW + w + 4, y + 13, row[col], 'start'));
  });
  $('#result-chart').replaceChildren(svg);
  $('#result-chart-caption').textContent = t('result.chart', r.columns[col], r.columns[0]);
}

async function browseLog() {
  const key = $('#log-key').value.trim();
  localStorage.setItem('kura.logKey', key); // a public key
  if (!checks) return;
  logView = JSON.parse(await checks.browseLog(key, 25));
  renderLog();
}

function chainSpec() {
  return JSON.stringify({ hash: $('#vault-chain-hash').value.trim(), url: $('#vault-chain-url').value.trim(), dev: $('#vault-dev').checked });
}

// duration says how long ms is, to the second.
function duration(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const parts = [[Math.floor(s / 86400), 'd'], [Math.floor(s / 3600) % 24, 'h'], [Math.floor(s / 60) % 60, 'm'], [s % 60, 's']];
  const shown = parts.filter(([n], i) => n > 0 || i === 3);
  return shown.map(([n, u]) => n + ' ' + u).join(' ');
}

function download(bytes, name) {
  const a = el('a', name, { download: name });
  a.href = URL.createObjectURL(new Blob([bytes]));
  return a;
}

// vaultChecks loads the vault's own program (vault.wasm) the first time
// the vault is used.
function vaultChecks() {
  vaultProgram ??= (async () => {
    const go = new Go();
    const r = await WebAssembly.instantiateStreaming(fetch('vault.wasm'), go.importObject);
    go.run(r.instance);
    return globalThis.kuraVault;
  })();
  return vaultProgram;
}

async function sealDocument() {
  const file = $('#vault-doc').files[0];
  if (!file || !checks) return;
  const until = new Date($('#vault-until').value);
  const r = await (await vaultChecks()).sealTimelock(new Uint8Array(await file.arrayBuffer()), until.toISOString().replace(/\.\d+Z$/, 'Z'), chainSpec());
  const a = JSON.parse(r.answer);
  const out = $('#vault-sealed');
  if (!a.ok) {
    out.textContent = t('vault.failed', a.error);
    out.className = 'bad';
    return;
  }
  const name = file.name + '.tlock';
  vault = { bytes: r.bytes, name, release: new Date(a.result.release_time) };
  const link = download(r.bytes, name);
  link.id = 'vault-download';
  const [before, after] = t('vault.sealed', a.result.round, vault.release.toLocaleString(lang), '\u0000').split('\u0000');
  out.replaceChildren(before, link, after);
  out.className = 'good';
  if ($('#vault-register').checked) {
    const p = el('span');
    p.id = 'vault-registered';
    try {
      const res = await fetch('/v1/timelock/registrations', { method: 'POST', body: a.result.registration, headers: { 'Content-Type': 'application/json' } });
      const text = await res.text();
      if (!res.ok) throw new Error(res.status + ' ' + text);
      p.textContent = ' ' + t('vault.registered', JSON.parse(text).index);
    } catch (e) {
      p.textContent = ' ' + t('vault.notRegistered', e.message);
    }
    out.append(p);
  }
  $('#vault-open-last').hidden = false;
  clearInterval(countdown);
  const tick = () => {
    const left = vault.release - Date.now();
    $('#vault-countdown').textContent = left > 0 ? t('vault.countdown', duration(left), vault.release.toLocaleString(lang)) : t('vault.due');
    if (left <= 0) clearInterval(countdown);
  };
  tick();
  countdown = setInterval(tick, 1000);
}

async function openSealed(bytes, name) {
  const out = $('#vault-opened');
  const text = $('#vault-text');
  text.hidden = true;
  const r = await (await vaultChecks()).openTimelock(bytes, chainSpec());
  const a = JSON.parse(r.answer);
  if (!a.ok) {
    out.textContent = t('vault.failed', a.error);
    out.className = 'bad';
    return;
  }
  const res = a.result;
  if (res.too_early) {
    const at = new Date(res.release_time);
    out.textContent = t('vault.early', at.toLocaleString(lang), duration(at - Date.now()));
    out.className = 'warn';
    return;
  }
  const plain = name.replace(/\.tlock$/, '') || 'document';
  const [before, after] = t('vault.opened', res.round, '\u0000').split('\u0000');
  out.replaceChildren(before, download(r.bytes, plain), after);
  out.className = 'good';
  try {
    if (r.bytes.length <= 65536) {
      text.textContent = new TextDecoder('utf-8', { fatal: true }).decode(r.bytes);
      text.hidden = false;
    }
  } catch (_) {} // not text: the download only
}

function renderLog() {
  const verdict = $('#log-verdict');
  const table = $('#log-entries');
  if (!logView) return;
  if (!logView.ok) {
    verdict.textContent = t('log.failed', logView.error);
    verdict.className = 'bad';
    table.hidden = true;
    return;
  }
  const v = logView.result;
  verdict.textContent = t('log.verified', v.origin, v.size, v.root.slice(0, 16) + '…');
  verdict.className = 'good';
  table.hidden = false;
  table.querySelector('tbody').replaceChildren(...v.entries.map((e) => {
    const release = e.kind === 'key_release' ? t('about.release', e.resource, t('decision.' + e.decision), e.tee || '?') : '';
    const about = [e.collaboration, release, e.run ? t('about.run', e.run) : '', e.version ? t('about.version', e.version) : ''].filter(Boolean).join(' · ');
    const tr = el('tr');
    tr.append(el('th', String(e.index), { scope: 'row' }), el('td', new Date(e.time).toLocaleString(lang)),
      el('td', kuraText.en['kind.' + e.kind] ? t('kind.' + e.kind) : e.kind), el('td', about),
      el('td', (e.subject || '').slice(0, 23)));
    return tr;
  }));
}

// renderTerms shows what the current manifest allows: datasets and their
// output policies, analyses, the worker's reference measurements and the
// verifiers.
function renderTerms(m) {
  const row = (cells) => {
    const tr = el('tr');
    cells.forEach((c, i) => tr.append(i === 0 ? el('th', c, { scope: 'row' }) : c instanceof Node ? c : el('td', c)));
    return tr;
  };
  const receivers = (a) => (a.receivers && a.receivers.length ? a.receivers : m.receivers || []).join(', ');
  const reads = (a) => a.reads && a.reads.length ? a.reads : a.aggregate ? [a.aggregate.from, ...(a.aggregate.joins || []).map((j) => j.dataset)] : [];
  $('#datasets tbody').replaceChildren(...(m.datasets || []).map((d) => row([d.id, d.owner,
    ((d.descriptor.schema && d.descriptor.schema.columns) || []).map((c) => c.identity ? t('terms.identity', c.name) : c.name).join(', '),
    String(d.output_policy.min_distinct_identities)])));
  $('#analyses tbody').replaceChildren(...(m.analyses || []).map((a) => {
    const query = el('td');
    const pre = el('pre', a.sql || JSON.stringify(a.aggregate, null, 2));
    query.append(pre);
    return row([a.id, reads(a).join(', '), receivers(a), query]);
  }));
  const ms = (m.worker.reference_values && m.worker.reference_values.measurements) || [];
  $('#worker tbody').replaceChildren(...ms.map((x) => row([x.tee, x.name, x.value])));
  const notes = [t('terms.verifiers', (m.verifiers || []).map((v) => v.name + (v.url ? ' (' + v.url + ')' : '')).join(', '))];
  if (m.expires) notes.push(t('terms.expires', new Date(m.expires).toLocaleString(lang)));
  $('#verifiers').textContent = notes.join(' ');
}

function renderHistory(h) {
  const list = $('#versions');
  $('#history').hidden = !h.ok;
  if (!h.ok) return;
  list.replaceChildren(...h.result.map((v) => {
    const li = el('li');
    li.append(el('strong', t('history.version', v.version)), ' · ', el('code', v.hash.slice(0, 16) + '…'));
    if (v.description) li.append(' · ', v.description);
    if (v.version === 1) {
      li.append(el('p', t('history.first')));
      return li;
    }
    if (v.must_reapprove.length === 0) {
      li.append(el('p', t('history.none', v.version - 1)));
    } else {
      const p = el('p', t('history.must') + ' ');
      p.className = 'warn';
      p.append(v.must_reapprove.map((c) => c.new ? t('history.new', c.party) : t('history.why', c.party, (c.changes || []).join('; '))).join(', '));
      li.append(p);
    }
    const details = el('details');
    details.append(el('summary', t('history.diff', v.version - 1)));
    const pre = el('pre');
    pre.className = 'diff';
    for (const l of v.diff) {
      const span = el('span', (l.op === '…' ? '…' : l.op + ' ' + l.text) + '\n');
      span.className = { '+': 'add', '-': 'del', '…': 'gap' }[l.op] || '';
      pre.append(span);
    }
    details.append(pre);
    li.append(details);
    return li;
  }));
}

function partyDetail(p) {
  const parts = [];
  if (p.state === 'approved' && p.via) parts.push(t('detail.via', p.via));
  if (p.state === 'stale') parts.push(t('detail.staleSince', p.stale_since, (p.changes || []).join('; ')));
  if (p.state === 'revoked') parts.push(t('detail.revoked', new Date(p.revoked_at).toLocaleString(lang), p.reason || ''));
  if (p.invalid) parts.push(t('detail.invalid', p.invalid));
  return parts.join(' · ');
}

function route() {
  opened = null;
  $('#result').hidden = true;
  const m = location.hash.match(/^#\/collaborations\/(.+)$/);
  if (m) showCollaboration(decodeURIComponent(m[1]));
}

document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('[data-lang]')) b.addEventListener('click', () => setLang(b.dataset.lang));
  $('#open').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('#collab-id').value.trim();
    const next = '#/collaborations/' + encodeURIComponent(id);
    if (location.hash === next) route(); else location.hash = next;
  });
  window.addEventListener('hashchange', () => { notice = null; route(); });
  $('#identity-file').addEventListener('change', (ev) => loadIdentity(ev.target));
  $('#forget').addEventListener('click', forgetIdentity);
  $('#approve').addEventListener('click', approve);
  $('#vault-seal').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sealDocument();
  });
  $('#vault-open').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = $('#vault-file').files[0];
    if (f && checks) openSealed(new Uint8Array(await f.arrayBuffer()), f.name);
  });
  $('#vault-open-last').addEventListener('click', () => { if (vault && checks) openSealed(vault.bytes, vault.name); });
  $('#log-key').value = localStorage.getItem('kura.logKey') || '';
  $('#log-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    browseLog();
  });
  setLang(lang);
  loadChecks();
});
