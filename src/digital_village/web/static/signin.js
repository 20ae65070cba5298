// What the pages for signed-in users share (the farmers' parcel form, the managers' label page):
// the token kept in this browser's localStorage, the panel's states, sign-in and sign-out.

export const TOKEN_KEY = 'dv-token';

export function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** Wire a panel's token field and buttons; returns how the page shows states and signs in. */
export function tokenPanel(panel, messages) {
  const result = panel.querySelector('[data-result]');

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
      return false;
    }
    localStorage.setItem(TOKEN_KEY, token);
    showState('signed-in');
    return true;
  }

  panel.querySelector('[data-token-save]').addEventListener('click', () => {
    const token = panel.querySelector('[data-token-input]').value.trim();
    if (token) signIn(token);
  });
  panel.querySelector('[data-token-forget]').addEventListener('click', () => {
    localStorage.removeItem(TOKEN_KEY);
    showState('signed-out');
  });
  return { result, showState, signIn, token: () => localStorage.getItem(TOKEN_KEY) };
}
