// The managers' label page (templates/labels.html): download a lot's label sheet with the
// token kept in this browser (the same one the parcel pages use), as a file to print.

const TOKEN_KEY = 'dv-token';
const panel = document.querySelector('[data-labels-form]');
const messages = JSON.parse(panel.querySelector('[data-labels-messages]').textContent);
const form = panel.querySelector('form');
const result = panel.querySelector('[data-result]');

function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function showState(state, text = '') {
  panel.dataset.state = state;
  for (const part of panel.querySelectorAll('[data-when]')) {
    part.hidden = part.dataset.when !== (state === 'signed-out' ? 'signed-out' : 'signed-in');
  }
  result.textContent = text;
}

async function signIn(token) {
  const response = await fetch('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) {
    localStorage.removeItem(TOKEN_KEY);
    const problem = await response.json().catch(() => ({}));
    showState('signed-out', format(messages.failed, { reason: problem.detail ?? response.status }));
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  showState('signed-in');
}

form.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  const data = new FormData(form);
  const lot = (data.get('lot') ?? '').toString().trim();
  const params = new URLSearchParams({ start_position: data.get('start_position') || '0' });
  const serials = (data.get('serials') ?? '').toString().trim();
  if (serials) params.set('serials', serials);
  const path = `/api/v1/labels/${data.get('gtin')}/${encodeURIComponent(lot)}/sheet.pdf?${params}`;
  showState('sending', messages.sending);
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${localStorage.getItem(TOKEN_KEY)}` },
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    showState('failed', format(messages.failed, { reason: problem.detail ?? response.status }));
    return;
  }
  const count = response.headers.get('X-Label-Count');
  const file = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = file;
  link.download = `labels-${data.get('gtin')}-${lot}.pdf`;
  link.textContent = link.download;
  link.dataset.labelsFile = count;
  showState('done', format(messages.done, { count }));
  result.append(' ', link);
  link.click();
});

panel.querySelector('[data-token-save]').addEventListener('click', () => {
  const token = panel.querySelector('[data-token-input]').value.trim();
  if (token) signIn(token);
});
panel.querySelector('[data-token-forget]').addEventListener('click', () => {
  localStorage.removeItem(TOKEN_KEY);
  showState('signed-out');
});
const saved = localStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved);
