// The managers' label page (templates/labels.html): download a lot's label sheet with the
// token kept in this browser (the same one the parcel pages use), as a file to print.

import { format, tokenPanel } from './signin.js';

const panel = document.querySelector('[data-labels-form]');
const messages = JSON.parse(panel.querySelector('[data-labels-messages]').textContent);
const form = panel.querySelector('form');
const { result, showState, signIn, token } = tokenPanel(panel, messages);

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
    headers: { Authorization: `Bearer ${token()}` },
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

const saved = token();
if (saved) signIn(saved);
