// The verification panel (templates/_verify_panel.html): runs verify.js on the entry the
// panel names and shows the outcome. "Verified" appears only when this browser's own check
// passed; every other outcome, including an error in this script, shows the failure state.
//
// Each panel carries data-index, data-base-url, optionally data-vkey (a pinned verifier key),
// and its messages as JSON (from the page's language; see digital_village.web). When the
// check ends, the panel's data-state becomes "verified" or "failed" and a "dv-verify" event
// carrying the result object bubbles from it.

import { verifyEntry } from './verify.js';

function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function show(panel, state, status, reason) {
  panel.dataset.state = state;
  panel.querySelector('[data-verify-status]').textContent = status;
  const reasonLine = panel.querySelector('[data-verify-reason]');
  reasonLine.textContent = reason ?? '';
  reasonLine.hidden = !reason;
}

/** Check the entry named by one panel and show the result; resolves to the result object. */
export async function mountVerifyPanel(panel) {
  const messages = JSON.parse(panel.querySelector('[data-verify-messages]').textContent);
  show(panel, 'checking', messages.checking);
  const index = Number(panel.dataset.index);
  const options = panel.dataset.vkey ? { vkey: panel.dataset.vkey } : {};
  let result;
  try {
    result = await verifyEntry(panel.dataset.baseUrl ?? '', index, options);
  } catch (error) {
    result = { ok: false, index, reason: `unexpected error: ${error}` };
  }
  if (result.ok === true) {
    const key = `${result.keyName} (${result.keyId})`;
    show(panel, 'verified', format(messages.verified, { index: result.index, size: result.treeSize, key }));
  } else {
    show(panel, 'failed', messages.failed, format(messages.reason, { reason: result.reason }));
  }
  panel.dispatchEvent(new CustomEvent('dv-verify', { detail: result, bubbles: true }));
  return result;
}

for (const panel of document.querySelectorAll('[data-verify-panel]')) {
  mountVerifyPanel(panel);
}
