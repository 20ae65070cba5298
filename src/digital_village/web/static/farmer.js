// The parcel page's form (templates/farmer.html): a farmer records the day's work in a few taps.
//
// The token comes from the invitation link (#token=dv_…, which never reaches the server) or is
// typed once; it is kept in this browser's localStorage and sent as a bearer header. The form
// builds an EPCIS 2.0 ObjectEvent on this parcel — the same shape trace/builders.py makes —
// and posts it to /api/v1/events, which checks that the household holds the parcel, appends it
// to the ledger and answers with its ledger index.

import { format, tokenPanel } from './signin.js';

const panel = document.querySelector('[data-farmer-form]');
const messages = JSON.parse(panel.querySelector('[data-farmer-messages]').textContent);
const form = panel.querySelector('form');
const signedIn = tokenPanel(panel, messages);
const { result, signIn } = signedIn;

function showState(state, text = '', link = null) {
  signedIn.showState(state, text);
  if (link) {
    result.append(' ');
    const anchor = document.createElement('a');
    anchor.href = link.href;
    anchor.textContent = link.text;
    anchor.setAttribute('download', link.download);
    result.append(anchor);
  }
}

function offset() {
  const minutes = -new Date().getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

function localTime(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:00${offset()}`;
}

/** Work done today is recorded now; on an earlier day, at noon. The form's date comes from the
 * server's calendar (China time), which can be a day ahead of the phone's own clock: a time
 * that would lie in the future is recorded as now instead. */
function eventTime(day) {
  const now = new Date();
  const today = localTime(now).slice(0, 10);
  if (day >= today) return localTime(now);
  const noon = `${day}T12:00:00${offset()}`;
  return Date.parse(noon) > now.getTime() ? localTime(now) : noon;
}

function number(data, name) {
  const text = (data.get(name) ?? '').toString().trim();
  return text === '' ? null : Number(text);
}

function quantity(value, unit) {
  return value === null ? undefined : { 'dv:quantity': value, 'dv:uom': unit };
}

/** The EPCIS event for the form's current values. */
export function buildEvent(data, parcelUri, bizStepBase) {
  const work = data.get('work');
  const day = data.get('date');
  const text = (name) => (data.get(name) ?? '').toString().trim() || undefined;
  const event = {
    type: 'ObjectEvent',
    eventTime: eventTime(day),
    eventTimeZoneOffset: offset(),
    bizStep: `${bizStepBase}${work}`,
    readPoint: { id: parcelUri },
  };
  if (work === 'harvesting') {
    const base = parcelUri.slice(0, parcelUri.lastIndexOf('/p/'));
    const lot = `${base}/01/${data.get('product')}/10/${encodeURIComponent(text('lot') ?? '')}`;
    Object.assign(event, {
      action: 'ADD',
      disposition: 'active',
      quantityList: [{ epcClass: lot, quantity: number(data, 'kg'), uom: 'KGM' }],
      ilmd: { 'dv:parcels': [parcelUri], 'dv:harvestDate': day },
    });
  } else {
    Object.assign(event, { action: 'OBSERVE', epcList: [], bizLocation: { id: parcelUri } });
    const extensions = {
      planting: { 'dv:crop': text('crop'), 'dv:variety': text('variety') },
      fertilizing: { 'dv:fertilizer': text('fertilizer'), 'dv:amount': quantity(number(data, 'amount'), 'KGM') },
      spraying: {
        'dv:pesticideName': text('pesticide'),
        'dv:dose': quantity(number(data, 'dose'), data.get('dose_unit')),
        'dv:preHarvestIntervalDays': number(data, 'phi') ?? undefined,
      },
      irrigating: { 'dv:water': quantity(number(data, 'water'), 'MMT') },
    }[work];
    Object.assign(event, extensions);
  }
  if (text('note')) event['dv:note'] = text('note');
  return JSON.parse(JSON.stringify(event)); // drops the fields left empty
}

/** What was recorded, in the reader's words: the work and what was typed for it. */
function recorded(data) {
  const work = form.querySelector('input[name="work"]:checked').parentElement.textContent.trim();
  const text = (name) => (data.get(name) ?? '').toString().trim();
  const parts = [work];
  const kind = data.get('work');
  if (kind === 'harvesting') {
    const product = form.querySelector('select[name="product"] option:checked')?.textContent ?? '';
    parts.push(product, format(messages.kg, { kg: text('kg') }), `${messages.lot} ${text('lot')}`);
  } else if (kind === 'spraying') {
    const unit = form.querySelector('select[name="dose_unit"] option:checked')?.textContent ?? '';
    parts.push(text('pesticide'), text('dose') ? `${text('dose')} ${unit}` : '');
  } else if (kind === 'fertilizing') {
    parts.push(text('fertilizer'), text('amount') ? format(messages.kg, { kg: text('amount') }) : '');
  } else if (kind === 'planting') {
    parts.push(text('crop'), text('variety'));
  }
  parts.push(text('date'));
  return parts.filter((part) => part).join(' · ');
}

/** The parcels the signed-in household holds today; the form is offered only on one of them. */
async function checkHeld(token) {
  const held = panel.querySelector('[data-held]');
  const notHeld = panel.querySelector('[data-not-held]');
  const fields = form.querySelector('[data-work-fields]');
  const response = await fetch('/api/v1/farmer/parcels', { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) return;
  const answer = await response.json();
  if (answer.any_parcel) return;
  const dkbm = panel.dataset.dkbm;
  held.replaceChildren();
  if (answer.role === 'farmer') {
    held.append(answer.parcels.length ? messages.held : messages.held_none);
    for (const code of answer.parcels) {
      const link = document.createElement('a');
      link.href = `/p/${code}`;
      link.textContent = code;
      link.className = 'chip';
      link.dataset.heldParcel = code;
      held.append(' ', link);
    }
  } else {
    held.append(format(messages.held_members, { count: answer.parcels.length }));
  }
  held.hidden = false;
  const mine = answer.parcels.includes(dkbm);
  notHeld.textContent = mine ? '' : format(messages.not_held, { dkbm });
  notHeld.hidden = mine;
  fields.hidden = !mine;
  fields.disabled = !mine;
  panel.dataset.holds = mine ? 'yes' : 'no';
}

/** Put the work just recorded at the top of the page's recent list. */
function addToRecent(event, body) {
  const list = document.querySelector('[data-recent]');
  if (!list) return;
  list.querySelector('[data-no-work]')?.remove();
  const item = document.createElement('li');
  item.dataset.step = `step_${event.bizStep.slice(event.bizStep.lastIndexOf('/') + 1)}`;
  const day = document.createElement('div');
  day.className = 'd';
  day.textContent = event.eventTime.slice(0, 10);
  const what = document.createElement('div');
  what.className = 'w';
  what.textContent = recorded(new FormData(form));
  const proof = document.createElement('a');
  proof.className = 'seq';
  proof.href = body.proof;
  proof.setAttribute('download', `entry-${body.ledgerSeq}.tlog-proof`);
  proof.textContent = `#${body.ledgerSeq}`;
  item.append(day, what, proof);
  list.prepend(item);
}

function showFields() {
  const work = new FormData(form).get('work');
  for (const part of form.querySelectorAll('[data-for]')) part.hidden = part.dataset.for !== work;
}

form.addEventListener('change', showFields);
form.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  const token = signedIn.token();
  const event = buildEvent(new FormData(form), panel.dataset.parcelUri, panel.dataset.bizstepBase);
  const button = form.querySelector('[data-submit]');
  button.disabled = true;
  showState('sending', messages.sending);
  try {
    const response = await fetch('/api/v1/events', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify(event),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      showState('done', format(messages.done, { seq: body.ledgerSeq, what: recorded(new FormData(form)) }), {
        href: body.proof,
        text: messages.proof,
        download: `entry-${body.ledgerSeq}.tlog-proof`,
      });
      panel.dataset.ledgerSeq = body.ledgerSeq;
      addToRecent(event, body);
    } else {
      showState('failed', format(messages.failed, { reason: body.detail ?? response.status }));
    }
  } catch (error) {
    showState('failed', format(messages.failed, { reason: String(error) }));
  } finally {
    button.disabled = false;
  }
});

/** A token in the address's fragment (the invitation link), taken out of the address bar. */
function tokenFromLink() {
  const token = new URLSearchParams(window.location.hash.slice(1)).get('token');
  if (token) {
    // Keep the token out of the address bar, the history and any screenshot.
    history.replaceState(null, '', window.location.pathname + window.location.search);
  }
  return token;
}

async function signInHere(token) {
  if (await signIn(token)) await checkHeld(token);
}

panel.querySelector('[data-token-save]').addEventListener('click', () => {
  const token = panel.querySelector('[data-token-input]').value.trim();
  if (token) checkHeld(token);
});
window.addEventListener('hashchange', () => {
  const token = tokenFromLink();
  if (token) signInHere(token);
});
showFields();
const saved = tokenFromLink() ?? signedIn.token();
if (saved) signInHere(saved);
