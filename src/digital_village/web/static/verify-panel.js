// The verification panel (templates/_verify_panel.html) and the page's facts.
//
// A panel with data-index checks that one entry (verify.js verifyEntry). A panel with
// data-verify-facts checks every fact the page shows: each element marked data-fact="<index>"
// shows something ledger entry <index> records, and its data-fact-claims (a JSON object of
// RFC 6901 pointers into the entry → the values the page shows) must be what the entry holds.
// All the entries are fetched in one request and proven against one signed checkpoint
// (verify.js verifyEntries). A fact whose entry fails, or whose claim differs, is marked "not
// verified" where it stands; a fact marked data-fact="" or data-fact-unrecorded was recorded
// before the ledger carried such facts and is marked as such (its entry, when named, is still
// checked: an edited one fails). "Verified" appears only when every fact on the page passed; every
// other outcome, including an error in this script, shows the failure state.
//
// Witnesses: the checkpoint's cosignatures are checked against the witnesses the operator
// configured (GET /api/v1/ledger/witness-policy, from the settings, never from the log's own
// witness table; or a policy pinned on the panel as data-witness-policy). The panel names who
// cosigned and says plainly when the quorum is not met; such a checkpoint is shown as "not
// witnessed" (data-state "unwitnessed"), never as verified. With no witness configured the panel
// says that only the log's own signature was checked.
//
// Messages come as JSON from the page's language (digital_village.web). When the check ends,
// the panel's data-state becomes "verified", "partial" (nothing failed, some facts cannot be
// checked), "unwitnessed" or "failed", its data-witnessed "yes", "no" or "none", and a
// "dv-verify" event carrying the result bubbles from it.

import { verifyEntries, verifyEntry } from './verify.js';
import { viaMirror } from './verify-tiles.js';

// Entries appended a moment ago are covered by the log's next checkpoint (published within
// about a second): ask again this many times, this far apart, before calling them unproven.
const PENDING_RETRIES = 5;
const PENDING_WAIT_MS = 1200;
const SEEN_KEY = 'dv-ledger-checkpoint:';
const POLICY_PATH = '/api/v1/ledger/witness-policy';

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

// ---- witnesses ------------------------------------------------------------------------------

function policyOf(value) {
  if (value === null || typeof value !== 'object' || !Array.isArray(value.witnesses)) {
    return { error: 'the witness policy is not {"quorum", "witnesses": [...]}' };
  }
  const witnesses = value.witnesses
    .filter((witness) => witness && typeof witness === 'object')
    .map((witness) => ({ name: String(witness.name ?? ''), vkey: String(witness.vkey ?? '') }));
  const quorum = Number.isSafeInteger(value.quorum) && value.quorum > 0 ? value.quorum : witnesses.length;
  return { witnesses, quorum };
}

/** The witness policy: pinned on the panel, or the operator's configuration from the site. */
export async function witnessPolicy(panel, base) {
  if (panel.dataset.witnessPolicy) {
    try {
      return policyOf(JSON.parse(panel.dataset.witnessPolicy));
    } catch {
      return { error: 'the page pins a witness policy that is not JSON' };
    }
  }
  try {
    const response = await fetch(`${base}${POLICY_PATH}`, { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) return { error: `HTTP ${response.status}` };
    return policyOf(await response.json());
  } catch (error) {
    return { error: String(error?.message ?? error) };
  }
}

function policyOptions(policy) {
  return policy.witnesses?.length ? { witnesses: policy.witnesses, quorum: policy.quorum } : {};
}

/** Whether to wait for cosignatures: checked, configured, and the quorum not met yet. */
function awaitingWitnesses(policy, check) {
  return Boolean(policy.witnesses?.length && check && !check.met);
}

/** Show who witnessed the checkpoint; returns "yes", "no" or "none" (none configured). */
export function showWitnesses(panel, messages, policy, check) {
  let line = panel.querySelector('[data-verify-witnesses]');
  if (!line) {
    // Made here rather than in the template: every page carries the panel, few bytes to spare.
    line = document.createElement('p');
    line.className = 'dv-verify__witnesses';
    line.dataset.verifyWitnesses = '';
    panel.querySelector('[data-verify-reason]').after(line);
  }
  const list = (names) => names.join(panel.lang?.startsWith('zh') ? '、' : ', ');
  let witnessed;
  let text;
  if (policy.error) {
    witnessed = 'no';
    text = format(messages.reason, { reason: `the witness settings could not be read (${policy.error})` });
  } else if (!policy.witnesses.length) {
    witnessed = 'none';
    text = messages.witness_none;
  } else if (check?.met) {
    witnessed = 'yes';
    text = format(messages.witness_ok, { names: list(check.cosigned.map((w) => w.name)), quorum: check.quorum });
  } else {
    witnessed = 'no';
    const cosigned = check?.cosigned ?? [];
    const missing = check?.missing ?? policy.witnesses.map((w) => w.name);
    text = format(messages.witness_missing, {
      quorum: check?.quorum ?? policy.quorum,
      count: cosigned.length,
      names: list(cosigned.map((w) => w.name)) || '-',
      missing: list(missing) || '-',
    });
  }
  panel.dataset.witnessed = witnessed;
  line.textContent = text;
  return witnessed;
}

// ---- one entry ------------------------------------------------------------------------------

/** Check the entry named by one panel and show the result; resolves to the result object. */
export async function mountVerifyPanel(panel) {
  const messages = JSON.parse(panel.querySelector('[data-verify-messages]').textContent);
  show(panel, 'checking', messages.checking);
  const index = Number(panel.dataset.index);
  const base = panel.dataset.baseUrl ?? '';
  const policy = await witnessPolicy(panel, base);
  const options = { ...(panel.dataset.vkey ? { vkey: panel.dataset.vkey } : {}), ...policyOptions(policy) };
  let result;
  try {
    for (let attempt = 0; ; attempt++) {
      result = await verifyEntry(base, index, options);
      // A new checkpoint is cosigned a round trip after it is published.
      if (!(result.ok && awaitingWitnesses(policy, result.witnesses)) || attempt >= PENDING_RETRIES) break;
      show(panel, 'checking', messages.waiting);
      await sleep(PENDING_WAIT_MS);
    }
  } catch (error) {
    result = { ok: false, index, reason: `unexpected error: ${error}` };
  }
  const witnessed = showWitnesses(panel, messages, policy, result.witnesses);
  result.witnessed = witnessed;
  if (result.ok === true && witnessed === 'no') {
    result.ok = false;
    show(panel, 'unwitnessed', messages.unwitnessed);
  } else if (result.ok === true) {
    const key = panel.dataset.signer || `${result.keyName} (${result.keyId})`;
    show(panel, 'verified', format(messages.verified, { index: result.index, size: result.treeSize, key }));
  } else {
    show(panel, 'failed', messages.failed, format(messages.reason, { reason: result.reason }));
  }
  panel.dispatchEvent(new CustomEvent('dv-verify', { detail: result, bubbles: true }));
  return result;
}

// ---- the page's facts -------------------------------------------------------------------------

/** Every fact element under `root`: {element, index (null: not on the ledger), claims}. */
export function collectFacts(root) {
  return Array.from(root.querySelectorAll('[data-fact]'), (element) => {
    const text = element.dataset.fact;
    // A fact may rest on several entries (a chart drawn from many seals): all must pass.
    const indexes = text === '' ? [] : text.split(' ').map(Number);
    const index = indexes.length ? indexes[0] : null;
    let claims = {};
    let malformed = null;
    try {
      claims = JSON.parse(element.dataset.factClaims ?? '{}');
      if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) throw new Error();
    } catch {
      malformed = 'the page marks this fact with claims that are not a JSON object';
    }
    if (!indexes.every((each) => Number.isSafeInteger(each) && each >= 0)) {
      malformed = `the page names entry ${JSON.stringify(text)}, not an index`;
    }
    return { element, index, indexes, claims, malformed, unrecorded: element.hasAttribute('data-fact-unrecorded') };
  });
}

/** The value at an RFC 6901 JSON pointer, or undefined when there is none. */
export function pointerValue(value, pointer) {
  if (pointer === '') return value;
  if (!pointer.startsWith('/')) return undefined;
  let node = value;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token) || Number(token) >= node.length) return undefined;
      node = node[Number(token)];
    } else if (node !== null && typeof node === 'object' && Object.hasOwn(node, token)) {
      node = node[token];
    } else {
      return undefined;
    }
  }
  return node;
}

/** JSON equality: the same types, numbers, strings, arrays in order and object members. */
export function sameJson(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((item, i) => sameJson(item, b[i]));
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && sameJson(a[key], b[key]));
}

/** The outcome of one fact given its entries' results (a Map index → result). */
export function judgeFactOf(fact, results) {
  for (const index of (fact.indexes ?? []).slice(1)) {
    const result = results.get(index);
    if (!result?.ok) {
      return { state: result?.pending ? 'pending' : 'failed', reason: result?.reason ?? `entry ${index} was not checked` };
    }
  }
  return judgeFact(fact, results.get(fact.index));
}

/** The outcome of one fact given its (first) entry's result: {state, reason}. */
export function judgeFact(fact, result) {
  const unbound = { state: 'unbound', reason: 'recorded before the ledger carried such facts' };
  if (fact.malformed) return { state: 'failed', reason: fact.malformed };
  if (fact.index === null) return unbound;
  if (!result) return { state: 'failed', reason: `entry ${fact.index} was not checked` };
  if (!result.ok) return { state: result.pending ? 'pending' : 'failed', reason: result.reason };
  // The entry is proven but predates this kind of fact: nothing in it to compare with.
  if (fact.unrecorded) return unbound;
  for (const [pointer, claimed] of Object.entries(fact.claims)) {
    const recorded = pointerValue(result.entry, pointer);
    if (recorded === undefined) {
      return { state: 'failed', reason: `entry ${fact.index} records nothing at ${pointer}` };
    }
    if (!sameJson(recorded, claimed)) {
      return {
        state: 'failed',
        reason: `the page shows ${JSON.stringify(claimed)} but entry ${fact.index} records ${JSON.stringify(recorded)} at ${pointer}`,
      };
    }
  }
  return { state: 'verified', reason: null };
}

/** Show one fact's outcome where it stands: a mark after a fact that did not pass. */
export function markFact(element, state, reason, messages) {
  element.dataset.factState = state;
  const next = element.nextElementSibling;
  if (next?.hasAttribute('data-fact-mark')) next.remove();
  if (state === 'verified') return;
  const mark = document.createElement('span');
  mark.className = 'dv-fact-mark';
  mark.dataset.factMark = state;
  mark.textContent = state === 'unbound' ? messages.fact_unbound : messages.fact_failed;
  if (reason) mark.title = reason;
  element.after(mark);
}

function remembered(storageKey) {
  try {
    const seen = JSON.parse(globalThis.localStorage?.getItem(storageKey) ?? 'null');
    return seen && Number.isSafeInteger(seen.size) && typeof seen.root === 'string' ? seen : undefined;
  } catch {
    return undefined; // no storage (private mode, a sandboxed frame): nothing remembered
  }
}

function remember(storageKey, outcome) {
  try {
    const seen = remembered(storageKey);
    if (!seen || outcome.treeSize > seen.size) {
      globalThis.localStorage?.setItem(storageKey, JSON.stringify({ size: outcome.treeSize, root: outcome.root }));
    }
  } catch {
    // storage full or forbidden: the check itself stands
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The checkpoint served as current does not cover the entries the log stored at the first
 * look (`stored`). A server's publisher signs a checkpoint within a second of an append, so on
 * a busy log the newest checkpoint is usually a little behind the log, yet it must soon reach
 * what the log stored a look earlier; one that does not is an old checkpoint served as current.
 */
function stale(outcome, stored) {
  return stored !== null && stored !== undefined && outcome.treeSize !== null && stored > outcome.treeSize;
}

/**
 * Check every fact on the page against one batch proof and show the outcome.
 * Resolves to {state, facts, failed, unbound, outcome} (outcome: verify.js verifyEntries).
 */
export async function mountFactsPanel(panel, root = document) {
  const messages = JSON.parse(panel.querySelector('[data-verify-messages]').textContent);
  show(panel, 'checking', messages.checking);
  const facts = collectFacts(root);
  const indexes = [...new Set(facts.flatMap((fact) => fact.indexes).filter((index) => Number.isSafeInteger(index) && index >= 0))];
  const base = panel.dataset.baseUrl ?? '';
  const storageKey = SEEN_KEY + (base || globalThis.location?.origin || '');
  const policy = await witnessPolicy(panel, base);
  const options = { ...(panel.dataset.vkey ? { vkey: panel.dataset.vkey } : {}), ...policyOptions(policy) };
  let outcome = null;
  let judged = [];
  let stored = null; // entries the log stored at the first look
  try {
    for (let attempt = 0; ; attempt++) {
      outcome = indexes.length
        ? await verifyEntries(base, indexes, { ...options, ...(await viaMirror(base)), seen: remembered(storageKey) })
        : { ok: true, results: new Map(), treeSize: null };
      if (attempt === 0 && Number.isSafeInteger(outcome.logSize)) stored = outcome.logSize;
      judged = facts.map((fact) => judgeFactOf(fact, outcome.results));
      const waiting = outcome.ok && (judged.some((verdict) => verdict.state === 'pending') || stale(outcome, stored) || awaitingWitnesses(policy, outcome.witnesses));
      if (!waiting || attempt >= PENDING_RETRIES) break;
      show(panel, 'checking', messages.waiting);
      await sleep(PENDING_WAIT_MS);
    }
    if (outcome.ok && outcome.treeSize !== null) remember(storageKey, outcome);
  } catch (error) {
    const reason = `unexpected error: ${error}`;
    judged = facts.map(() => ({ state: 'failed', reason }));
  }
  facts.forEach((fact, i) => {
    // Still not covered after waiting: a checkpoint that stopped moving is not a proof.
    const verdict = judged[i].state === 'pending' ? { ...judged[i], state: 'failed' } : judged[i];
    judged[i] = verdict;
    markFact(fact.element, verdict.state, verdict.reason, messages);
  });
  const failed = judged.filter((verdict) => verdict.state === 'failed');
  const unbound = judged.filter((verdict) => verdict.state === 'unbound').length;
  const counts = {
    facts: facts.length,
    passed: facts.length - failed.length - unbound,
    failed: failed.length,
    unbound,
    entries: indexes.length,
    size: outcome?.treeSize ?? '?',
    key: panel.dataset.signer || (outcome?.keyName ? `${outcome.keyName} (${outcome.keyId})` : ''),
  };
  const witnessed = showWitnesses(panel, messages, policy, outcome?.witnesses);
  let state;
  if (outcome?.ok && stale(outcome, stored)) {
    // Every fact may be proven, yet in a tree older than the log: whatever came after it (a
    // recall, a failed inspection) would be hidden. The page is not verified.
    state = 'failed';
    const reason = `the log stores ${stored} entries but the checkpoint served as current covers ${outcome.treeSize}: an old checkpoint is being served`;
    show(panel, state, format(messages.facts_stale, { ...counts, entries: stored }), format(messages.reason, { reason }));
  } else if (failed.length || facts.length === 0 || !outcome?.ok) {
    state = 'failed';
    const reason = failed[0]?.reason ?? outcome?.reason ?? 'the page names no facts to check';
    show(panel, state, format(messages.facts_failed, counts), format(messages.reason, { reason }));
  } else if (witnessed === 'no') {
    // Every fact matches the log's own signature, but nobody else vouches for that log.
    state = 'unwitnessed';
    show(panel, state, messages.unwitnessed);
  } else if (unbound) {
    state = 'partial';
    show(panel, state, format(messages.facts_partial, counts));
  } else {
    state = 'verified';
    show(panel, state, format(messages.facts_verified, counts));
  }
  const result = { state, ok: state === 'verified', witnessed, ...counts, outcome, reasons: failed.map((verdict) => verdict.reason) };
  panel.dispatchEvent(new CustomEvent('dv-verify', { detail: result, bubbles: true }));
  return result;
}

for (const panel of document.querySelectorAll('[data-verify-panel]')) {
  if (panel.hasAttribute('data-verify-facts')) {
    mountFactsPanel(panel).catch((error) => show(panel, 'failed', `unexpected error: ${error}`));
  } else {
    mountVerifyPanel(panel);
  }
}
