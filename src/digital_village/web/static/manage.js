// The managers' console (templates/manage/shell.html): signed in with the token this browser
// keeps (the same one the label and parcel pages use), it loads the section's panel from
// /manage/panel/<section> and sends the panel's forms as JSON with the token. The server
// renders every panel, its checks and its mistakes; this script only carries them:
//   form[data-post]      sent on submit; the answer replaces the panel;
//   [data-check] fields  on change, the form's values go to the panel's URL as a query and the
//                        answer's [data-live] parts replace this page's (the fields keep focus);
//   [data-reload] fields on change, the whole panel is loaded again for the form's values;
//   a[data-download]     fetched with the token and saved as a file (label sheets);
//   input[data-gtin]     shows the GS1 check digit of what is typed, as it is typed;
//   [data-pick] shapes   on the harvest map tick and untick their parcel's box in the list.

import { format, tokenPanel } from './signin.js';

const root = document.querySelector('[data-manage]');
const messages = JSON.parse(root.querySelector('[data-manage-messages]').textContent);
const panel = root.querySelector('[data-manage-panel]');
const section = root.dataset.section;
const lang = root.dataset.lang;
const { result, showState, signIn, token } = tokenPanel(root, messages);

function url(path, query) {
  const params = new URLSearchParams(query ?? []);
  params.set('lang', lang);
  return `${path}?${params}`;
}

function fields(form) {
  const body = {};
  for (const [name, value] of new FormData(form)) {
    if (typeof value !== 'string') continue;
    if (name in body) body[name] = [].concat(body[name], value);
    else body[name] = form.querySelector(`[name="${CSS.escape(name)}"][data-many]`) ? [value] : value;
  }
  return body;
}

function query(form) {
  const params = [];
  for (const [name, value] of new FormData(form)) {
    if (typeof value === 'string') params.push([name, value]);
  }
  return params;
}

async function answer(response) {
  const type = response.headers.get('content-type') ?? '';
  if (type.startsWith('text/html')) return { html: await response.text() };
  const problem = await response.json().catch(() => ({}));
  return { problem: problem.detail ?? String(response.status) };
}

function show(html) {
  panel.innerHTML = html;
  panel.dataset.loaded = section;
  result.textContent = '';
}

async function load(params) {
  panel.setAttribute('aria-busy', 'true');
  const response = await fetch(url(`/manage/panel/${section}`, params), {
    headers: { Authorization: `Bearer ${token()}` },
  });
  panel.removeAttribute('aria-busy');
  const { html, problem } = await answer(response);
  if (html !== undefined && response.ok) show(html);
  else result.textContent = format(messages.failed, { reason: problem ?? response.status });
}

let checking = 0;
async function check(form) {
  const mine = ++checking;
  const response = await fetch(url(`/manage/panel/${section}`, query(form)), {
    headers: { Authorization: `Bearer ${token()}` },
  });
  if (mine !== checking || !response.ok) return;
  const fresh = document.createElement('div');
  fresh.innerHTML = await response.text();
  for (const part of fresh.querySelectorAll('[data-live]')) {
    const here = form.querySelector(`[data-live="${CSS.escape(part.dataset.live)}"]`);
    if (here) here.replaceWith(part);
  }
  form.dataset.checked = String(mine);
}

async function send(form) {
  const button = form.querySelector('button[type="submit"]');
  if (button) button.disabled = true;
  result.textContent = messages.sending;
  const response = await fetch(url(form.dataset.post), {
    method: 'POST',
    headers: { Authorization: `Bearer ${token()}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(fields(form)),
  });
  const { html, problem } = await answer(response);
  if (html !== undefined) {
    show(html);
    const first = panel.querySelector('[data-error-for]');
    if (first) first.scrollIntoView({ block: 'center' });
    else panel.querySelector('[data-done]')?.scrollIntoView({ block: 'center' });
    return;
  }
  if (button) button.disabled = false;
  result.textContent = format(messages.failed, { reason: problem });
}

async function download(link) {
  result.textContent = messages.making;
  const response = await fetch(link.getAttribute('href'), {
    headers: { Authorization: `Bearer ${token()}` },
  });
  if (!response.ok) {
    const { problem } = await answer(response);
    result.textContent = format(messages.failed, { reason: problem });
    return;
  }
  const file = document.createElement('a');
  file.href = URL.createObjectURL(await response.blob());
  file.download = link.dataset.download;
  file.textContent = file.download;
  file.dataset.labelsFile = response.headers.get('X-Label-Count') ?? '';
  result.textContent = format(messages.made, { count: file.dataset.labelsFile });
  result.append(' ', file);
  file.click();
}

function gtinCheck(input) {
  const out = input.form?.querySelector('[data-gtin-check]');
  if (!out) return;
  const digits = input.value.replace(/\s/g, '');
  if (!/^\d+$/.test(digits) || ![8, 12, 13, 14].includes(digits.length)) {
    out.textContent = '';
    return;
  }
  let total = 0;
  [...digits.slice(0, -1)].reverse().forEach((digit, index) => {
    total += Number(digit) * (index % 2 === 0 ? 3 : 1);
  });
  const expected = String((10 - (total % 10)) % 10);
  const right = digits.at(-1) === expected;
  out.textContent = format(right ? messages.gtinOk : messages.gtinWrong, { digit: expected });
  out.className = right ? 'ok' : 'bad';
}

panel.addEventListener('submit', (event) => {
  const form = event.target.closest('form[data-post]');
  if (!form) return;
  event.preventDefault();
  send(form);
});

let timer;
panel.addEventListener('input', (event) => {
  if (event.target.matches('input[data-gtin]')) gtinCheck(event.target);
  const form = event.target.closest('form[data-check]');
  if (!form || event.target.closest('[data-reload]')) return;
  clearTimeout(timer);
  timer = setTimeout(() => check(form), 250);
});

panel.addEventListener('change', (event) => {
  if (event.target.matches('input[name="parcel"]')) {
    const shape = panel.querySelector(`[data-pick="${CSS.escape(event.target.value)}"]`);
    shape?.toggleAttribute('data-chosen', event.target.checked);
  }
  const form = event.target.closest('form');
  if (form && event.target.closest('[data-reload]')) load(query(form));
  else if (form?.matches('[data-check]')) check(form);
});

panel.addEventListener('click', (event) => {
  const shape = event.target.closest('[data-pick]');
  if (shape) {
    const box = panel.querySelector(`input[name="parcel"][value="${CSS.escape(shape.dataset.pick)}"]`);
    if (box) {
      box.checked = !box.checked;
      box.dispatchEvent(new Event('change', { bubbles: true }));
    }
    return;
  }
  const link = event.target.closest('a[data-download]');
  if (!link) return;
  event.preventDefault();
  download(link);
});

new MutationObserver(() => {
  if (root.dataset.state === 'signed-in' && panel.dataset.loaded !== section) {
    panel.dataset.loaded = section;
    load();
  }
  if (root.dataset.state === 'signed-out') {
    panel.replaceChildren();
    delete panel.dataset.loaded;
  }
}).observe(root, { attributes: true, attributeFilter: ['data-state'] });

const saved = token();
if (saved) signIn(saved);
else showState('signed-out');
