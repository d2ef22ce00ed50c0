// The kura console: fetches what the CLI fetches, verifies it here with
// kura's own Go checks (kura.wasm), and shows it in English or Japanese.
'use strict';

let lang = localStorage.getItem('kura.lang') === 'ja' ? 'ja' : 'en';
let checks = null; // globalThis.kura once kura.wasm runs
let rerender = () => {};

function t(key, ...args) {
  const s = (kuraText[lang] && kuraText[lang][key]) || kuraText.en[key] || key;
  return s.replace(/\{(\d+)\}/g, (_, i) => String(args[Number(i)] ?? ''));
}

function $(sel) { return document.querySelector(sel); }

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
  rerender();
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
  let runs = null;
  try {
    runs = JSON.parse(await getJSONText('/v1/runs?collaboration=' + encodeURIComponent(id))).runs;
  } catch (_) {}
  rerender = () => renderCollaboration(id, answer, runs);
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
  } else {
    const c = answer.result;
    const ready = c.parties.every((p) => !p.required || p.state === 'approved');
    verdict.textContent = t('collab.verified') + (lang === 'ja' ? '' : ' ') + t(ready ? 'collab.ready' : 'collab.notReady');
    verdict.className = ready ? 'good' : 'warn';
    for (const [k, v] of [['facts.versions', c.versions], ['facts.hash', c.manifest_hash]]) {
      facts.append(el('dt', t(k)), el('dd', String(v)));
    }
    $('#parties').hidden = false;
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
    tr.append(el('td', t('runs.none'), { colspan: '5' }));
    body.append(tr);
    return;
  }
  for (const r of runs) {
    const tr = el('tr');
    tr.append(el('th', r.id, { scope: 'row' }), el('td', r.analysis), el('td', kuraText.en['run.' + r.state] ? t('run.' + r.state) : r.state),
      el('td', new Date(r.submitted_at).toLocaleString(lang)), el('td', r.worker || ''));
    body.append(tr);
  }
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
  window.addEventListener('hashchange', route);
  setLang(lang);
  loadChecks();
});
