// In-browser verification of a Digital Village ledger entry (docs/LEDGER.md).
//
// The consumer page must not show a green tick the server drew: this module fetches the
// entry's C2SP tlog-proof and the log's verifier key and checks them itself, with WebCrypto
// only, in this order, stopping at the first failure (as ledger/verify.py does):
//
//   1. the verifier key parses, and its key ID is SHA-256(name ‖ "\n" ‖ 0x01 ‖ pubkey)[:4];
//   2. the proof file parses (c2sp.org/tlog-proof@v1; the entry's bytes are in `extra`);
//   3. the checkpoint note carries a valid Ed25519 signature by that key, and parses as a
//      c2sp.org/tlog-checkpoint (origin, tree size, base64 root hash);
//   4. SHA-256(0x00 ‖ entry) is included at the entry's index in that tree: RFC 9162
//      §2.1.3.2, the same algorithm as ledger/merkle.py verify_inclusion;
//   5. the entry is JSON (it is shown to the reader).
//
// Parsing is strict, like the Python parsers: canonical base64, decimal numbers without
// leading zeros, UTF-8 without control characters; anything else is rejected, naming it.
// The key fetched from the same server proves that the server's log and its published key
// agree; pass `vkey` (a key published elsewhere) to pin it.
//
// Witnesses (c2sp.org/tlog-cosignature): given `witnesses` ([{name, vkey}], the display name
// and a cosignature/v1 key, type 0x04) and `quorum`, the checkpoint's extra signature lines are
// checked too: a line counts when it is that witness's valid timestamped Ed25519 signature of
// "cosignature/v1\ntime <t>\n" followed by the checkpoint text. The keys come from the caller
// (the operator's configuration), never from the log's own list of witnesses.
//
// No libraries, no network beyond the two same-origin requests.

const TLOG_PROOF_HEADER = 'c2sp.org/tlog-proof@v1';
const SIGNATURE_PREFIX = '\u2014 '; // "— ": an em dash and a space start each signature line
const ED25519 = 0x01;
const COSIGNATURE_V1 = 0x04;
const HASH_SIZE = 32;
const MAX_PROOF_HASHES = 64; // a tree of up to 2**64 leaves needs at most 64
const MAX_SIGNATURES = 100;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const HEX_KEY_ID = /^[0-9a-fA-F]{8}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A check failed; the message names the step and what was wrong. */
export class VerifyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'VerifyError';
  }
}

function fail(message) {
  throw new VerifyError(message);
}

// ---- small helpers ------------------------------------------------------------------------

function decodeBase64(text, what) {
  if (!BASE64.test(text)) fail(`${what} is not base64`);
  const bytes = Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
  // One value, one spelling: reject non-zero padding bits, as the Python side does.
  if (encodeBase64(bytes) !== text) fail(`${what} is not canonical base64`);
  return bytes;
}

function encodeBase64(bytes) {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function toHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((length, part) => length + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let difference = 0; // no early exit, as hmac.compare_digest
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

// Decimal numbers up to 2**64 - 1 as the formats allow, returned as BigInt.
function parseDecimal(text, what) {
  if (!DECIMAL.test(text)) fail(`${what} ${JSON.stringify(text.slice(0, 30))} is not a decimal number`);
  const value = BigInt(text);
  if (value >= 2n ** 64n) fail(`${what} ${text.slice(0, 30)} is not below 2**64`);
  return value;
}

function validName(name) {
  return name !== '' && !name.includes('+') && !/[\s\u0000-\u001f]/u.test(name);
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/** RFC 9162 leaf hash: SHA-256(0x00 ‖ entry). */
export function hashLeaf(entry) {
  return sha256(concat(Uint8Array.of(0x00), entry));
}

/** RFC 9162 interior node hash: SHA-256(0x01 ‖ left ‖ right). */
export function hashChildren(left, right) {
  return sha256(concat(Uint8Array.of(0x01), left, right));
}

// ---- verifier key: <name>+<hex key ID>+base64(0x01 ‖ public key) --------------------------

/** Parse a verifier key and check that its key ID matches its name and public key. */
export function parseVerifierKey(vkey) {
  return parseKey(vkey, ED25519, 'verifier key');
}

/** Parse a witness's cosignature/v1 key: <name>+<hex key ID>+base64(0x04 ‖ public key). */
export function parseWitnessKey(vkey) {
  return parseKey(vkey, COSIGNATURE_V1, 'witness key');
}

async function parseKey(vkey, algorithm, what) {
  const first = vkey.indexOf('+');
  const second = first < 0 ? -1 : vkey.indexOf('+', first + 1);
  if (second < 0) fail(`malformed ${what}: expected <name>+<key ID>+<key>`);
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  if (!validName(name)) fail(`malformed ${what}: invalid name ${JSON.stringify(name)}`);
  if (!HEX_KEY_ID.test(hexId)) fail(`malformed ${what}: key ID ${JSON.stringify(hexId)} is not 8 hex digits`);
  const material = decodeBase64(vkey.slice(second + 1), `${what} data`);
  if (material.length === 0) fail(`malformed ${what}: empty key data`);
  if (material[0] !== algorithm) fail(`unknown signature algorithm 0x${material[0].toString(16).padStart(2, '0')} in ${what}`);
  if (material.length !== 33) fail(`malformed ${what}: Ed25519 key data must be 32 bytes`);
  const publicKey = material.slice(1);
  const keyId = (await sha256(concat(encoder.encode(name + '\n'), material))).slice(0, 4);
  if (toHex(keyId) !== hexId.toLowerCase()) fail(`${what} ID ${hexId} does not match its name and key`);
  return { name, keyId, publicKey };
}

// ---- signed note: text, a blank line, "— <name> base64(key ID ‖ signature)" lines ----------

/** Split a signed note into its text and signatures, none of them verified yet. */
export function parseNote(noteBytes) {
  let decoded;
  try {
    decoded = strictUtf8.decode(noteBytes);
  } catch {
    fail('malformed note: not valid UTF-8');
  }
  for (const char of decoded) {
    if (char < ' ' && char !== '\n') {
      fail(`malformed note: control character U+${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`);
    }
  }
  const split = decoded.lastIndexOf('\n\n');
  if (split < 0) fail('malformed note: no blank line before the signatures');
  const text = decoded.slice(0, split + 1);
  const block = decoded.slice(split + 2);
  if (!block.endsWith('\n')) fail('malformed note: no signature lines, or no final newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) fail(`malformed note: more than ${MAX_SIGNATURES} signatures`);
  const signatures = lines.map((line) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) fail(`malformed note: not a signature line: ${JSON.stringify(line.slice(0, 40))}`);
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(' ');
    const name = space < 0 ? rest : rest.slice(0, space);
    if (!validName(name)) fail(`malformed note: invalid key name ${JSON.stringify(name)}`);
    const raw = decodeBase64(space < 0 ? '' : rest.slice(space + 1), `signature by ${name}`);
    if (raw.length < 5) fail(`malformed note: signature by ${name} is too short`);
    return { name, keyId: raw.slice(0, 4), signature: raw.slice(4) };
  });
  return { text, signatures };
}

/** Check the note's signature by `key`; signatures by other keys are ignored (witnesses). */
export async function openNote(noteBytes, key) {
  const note = parseNote(noteBytes);
  const mine = note.signatures.filter((s) => s.name === key.name && equalBytes(s.keyId, key.keyId));
  const label = `${key.name}+${toHex(key.keyId)}`;
  if (mine.length === 0) fail(`checkpoint signature: note has no signature from the trusted key ${label}`);
  let publicKey;
  try {
    publicKey = await crypto.subtle.importKey('raw', key.publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch (error) {
    fail(`this browser cannot check Ed25519 signatures (${error.name}); verify the downloaded proof with dv verify`);
  }
  const message = encoder.encode(note.text);
  for (const { signature } of mine) {
    let valid = false;
    try {
      valid = signature.length === 64 && (await crypto.subtle.verify({ name: 'Ed25519' }, publicKey, signature, message));
    } catch {
      valid = false;
    }
    if (!valid) fail(`checkpoint signature: invalid signature for key ${label}`);
  }
  return note.text;
}

// ---- witnesses: cosignature/v1 lines (c2sp.org/tlog-cosignature) ----------------------------

async function validCosignature(key, text, signature) {
  // key ID ‖ u64 big-endian timestamp ‖ Ed25519 signature; the key ID was split off already.
  if (signature.length !== 8 + 64) return null;
  const timestamp = new DataView(signature.buffer, signature.byteOffset, 8).getBigUint64(0);
  if (timestamp >= 2n ** 63n) return null;
  const message = encoder.encode(`cosignature/v1\ntime ${timestamp}\n${text}`);
  let publicKey;
  try {
    publicKey = await crypto.subtle.importKey('raw', key.publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch (error) {
    fail(`this browser cannot check Ed25519 signatures (${error.name}); verify the downloaded proof with dv verify`);
  }
  try {
    return (await crypto.subtle.verify({ name: 'Ed25519' }, publicKey, signature.slice(8), message)) ? timestamp : null;
  } catch {
    return null;
  }
}

/**
 * Which of the trusted witnesses cosigned the note: `witnesses` is [{name, vkey}] (name: what
 * the reader is shown; vkey: the witness's cosignature/v1 key), `quorum` how many must have.
 * Lines from other keys (the log's own, unknown witnesses) are ignored; a malformed witness key
 * counts as a witness that did not cosign. Throws VerifyError for a malformed note; otherwise
 * resolves to {met, quorum, cosigned: [{name, keyName, time}], missing: [name], invalid: [name]}.
 */
export async function checkCosignatures(noteBytes, witnesses, quorum) {
  const note = parseNote(noteBytes);
  const cosigned = [];
  const missing = [];
  const invalid = [];
  for (const witness of witnesses) {
    let key;
    try {
      key = await parseWitnessKey(String(witness?.vkey));
    } catch (error) {
      if (!(error instanceof VerifyError)) throw error;
      // A key the configuration got wrong vouches for nothing.
      missing.push(String(witness?.name ?? '?'));
      invalid.push(String(witness?.name ?? '?'));
      continue;
    }
    const label = String(witness.name || key.name);
    let valid = null;
    let claimed = false;
    for (const line of note.signatures) {
      if (line.name !== key.name || !equalBytes(line.keyId, key.keyId)) continue;
      claimed = true;
      valid = await validCosignature(key, note.text, line.signature);
      if (valid !== null) break;
    }
    if (valid !== null) {
      cosigned.push({ name: label, keyName: key.name, time: new Date(Number(valid) * 1000).toISOString() });
    } else {
      missing.push(label);
      if (claimed) invalid.push(label);
    }
  }
  const needed = Number.isSafeInteger(quorum) && quorum >= 0 ? quorum : witnesses.length;
  return { met: needed > 0 && cosigned.length >= needed, quorum: needed, cosigned, missing, invalid };
}

// ---- checkpoint: origin, tree size, base64 root hash, extension lines ----------------------

/** Parse c2sp.org/tlog-checkpoint text (every line ends with a newline). */
export function parseCheckpoint(text) {
  if (!text.endsWith('\n')) fail('malformed checkpoint: text must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) fail('malformed checkpoint: needs origin, size and root lines');
  const [origin, size, root, ...extensions] = lines;
  if (origin === '') fail('malformed checkpoint: origin must be one non-empty line');
  const treeSize = parseDecimal(size, 'malformed checkpoint: tree size');
  const rootHash = decodeBase64(root, 'malformed checkpoint: root hash');
  if (rootHash.length !== HASH_SIZE) fail('malformed checkpoint: root hash must be 32 bytes');
  if (extensions.some((line) => line === '')) fail('malformed checkpoint: empty extension line');
  return { origin, treeSize, rootHash, extensions };
}

// ---- proof file: c2sp.org/tlog-proof@v1 ---------------------------------------------------

/** Parse a tlog-proof file (bytes); the checkpoint inside is returned unverified. */
export function parseTlogProof(bytes) {
  let position = 0;
  const nextLine = (expecting) => {
    const end = bytes.indexOf(0x0a, position);
    if (end < 0) fail(`malformed proof file: tlog-proof ends before its ${expecting}`);
    const raw = bytes.subarray(position, end);
    position = end + 1;
    if (raw.some((byte) => byte > 0x7f)) fail(`malformed proof file: non-ASCII ${expecting} line`);
    return strictUtf8.decode(raw); // ASCII, checked above
  };
  if (nextLine('header') !== TLOG_PROOF_HEADER) fail(`malformed proof file: first line must be ${JSON.stringify(TLOG_PROOF_HEADER)}`);
  let line = nextLine('index');
  let extra = null;
  if (line.startsWith('extra ')) {
    extra = decodeBase64(line.slice('extra '.length), 'malformed proof file: extra data');
    line = nextLine('index');
  }
  if (!line.startsWith('index ')) fail(`malformed proof file: expected 'index N', found ${JSON.stringify(line.slice(0, 30))}`);
  const index = parseDecimal(line.slice('index '.length), 'malformed proof file: leaf index');
  const hashes = [];
  while ((line = nextLine('blank line before the checkpoint')) !== '') {
    if (hashes.length === MAX_PROOF_HASHES) fail(`malformed proof file: more than ${MAX_PROOF_HASHES} proof hashes`);
    const hash = decodeBase64(line, `malformed proof file: proof hash ${hashes.length}`);
    if (hash.length !== HASH_SIZE) fail(`malformed proof file: proof hash ${hashes.length} has ${hash.length} bytes, expected 32`);
    hashes.push(hash);
  }
  const checkpoint = bytes.slice(position);
  if (checkpoint.length === 0) fail('malformed proof file: proof has no checkpoint');
  return { index, hashes, checkpoint, extra };
}

// ---- RFC 9162 §2.1.3.2 inclusion verification ----------------------------------------------

/** Check an inclusion proof; index and treeSize are BigInt (JS bit operators stop at 32 bits). */
export async function verifyInclusion(leafHash, index, treeSize, proof, rootHash) {
  if (index < 0n || index >= treeSize) fail(`leaf index ${index} is outside a tree of size ${treeSize}`);
  let fn = index;
  let sn = treeSize - 1n;
  let node = leafHash;
  for (const element of proof) {
    if (sn === 0n) fail(`inclusion proof has ${proof.length} hashes, too many for leaf ${index} of a tree of size ${treeSize}`);
    if ((fn & 1n) === 1n || fn === sn) {
      node = await hashChildren(element, node);
      // Right-shift both until fn's lowest bit is set or fn is 0: skip levels where the
      // node is the last, unpaired one of its subtree.
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      node = await hashChildren(node, element);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail(`inclusion proof has ${proof.length} hashes, too few for leaf ${index} of a tree of size ${treeSize}`);
  if (!equalBytes(node, rootHash)) fail(`inclusion proof for leaf ${index} does not lead to the root of size ${treeSize}`);
}

// ---- putting it together --------------------------------------------------------------------

/**
 * Verify a tlog-proof file (bytes) against a verifier key string, offline.
 * `expectedIndex` (a number) pins the entry the caller asked for. Throws VerifyError.
 */
export async function verifyProof(proofBytes, vkey, { expectedIndex, witnesses, quorum } = {}) {
  const key = await parseVerifierKey(vkey);
  const proof = parseTlogProof(proofBytes);
  if (expectedIndex !== undefined && proof.index !== BigInt(expectedIndex)) {
    fail(`the proof is for entry ${proof.index}, not entry ${expectedIndex}`);
  }
  const checkpoint = parseCheckpoint(await openNote(proof.checkpoint, key));
  if (proof.extra === null) fail('proof file carries no entry (no extra line)');
  const leafHash = await hashLeaf(proof.extra);
  try {
    await verifyInclusion(leafHash, proof.index, checkpoint.treeSize, proof.hashes, checkpoint.rootHash);
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    fail(`entry is not proven at index ${proof.index} of ${JSON.stringify(checkpoint.origin)} size ${checkpoint.treeSize}: ${error.message}`);
  }
  let entry;
  try {
    entry = JSON.parse(strictUtf8.decode(proof.extra));
  } catch {
    fail('the proven entry is not JSON');
  }
  if (checkpoint.treeSize > BigInt(Number.MAX_SAFE_INTEGER)) fail('tree size is too large to show');
  return {
    witnesses: witnesses?.length ? await checkCosignatures(proof.checkpoint, witnesses, quorum) : null,
    index: Number(proof.index),
    treeSize: Number(checkpoint.treeSize),
    origin: checkpoint.origin,
    keyName: key.name,
    keyId: toHex(key.keyId),
    entry,
    leafHash: toHex(leafHash),
  };
}

async function fetchBody(fetchImpl, url, what) {
  let response;
  try {
    response = await fetchImpl(url, { credentials: 'same-origin', cache: 'no-store' });
  } catch (error) {
    fail(`could not fetch the ${what}: ${error.message || error}`);
  }
  const body = new Uint8Array(await response.arrayBuffer());
  if (!response.ok) {
    let detail = '';
    try {
      detail = JSON.parse(strictUtf8.decode(body)).detail || '';
    } catch {
      // not a problem+json body: the status says enough
    }
    fail(`could not fetch the ${what}: HTTP ${response.status}${detail ? ` (${detail})` : ''}`);
  }
  return body;
}

/** The fetch to use, the server's base URL, and the verifier key: pinned, or fetched. */
function requests(baseUrl, options) {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const base = String(baseUrl ?? '').replace(/\/+$/, '');
  const keyRequest = options.vkey !== undefined
    ? Promise.resolve(options.vkey)
    : fetchBody(fetchImpl, `${base}/api/v1/ledger/key`, 'verifier key').then(keyLine);
  return { fetchImpl, base, keyRequest };
}

function keyLine(body) {
  let text;
  try {
    text = strictUtf8.decode(body);
  } catch {
    fail('malformed verifier key: not valid UTF-8');
  }
  // The key is served as one line; only that line's newline is stripped.
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}

/**
 * Fetch and verify ledger entry `index` from the server at `baseUrl` ('' for this site).
 * Never throws: resolves to {ok, index, treeSize, origin, keyName, keyId, entry, reason}, where
 * everything but ok, index and reason is null unless ok is true.
 * Options: vkey (pin a verifier key instead of fetching it), witnesses and quorum (the
 * witness policy, see checkCosignatures; result.witnesses then says who cosigned), fetch.
 */
export async function verifyEntry(baseUrl, index, options = {}) {
  const result = { ok: false, index, treeSize: null, origin: null, keyName: null, keyId: null, entry: null, reason: null, witnesses: null };
  try {
    if (!Number.isSafeInteger(index) || index < 0) fail(`entry index ${JSON.stringify(index)} is not a non-negative integer`);
    if (!globalThis.crypto?.subtle) fail('this page has no WebCrypto (it needs https://); verify the downloaded proof with dv verify');
    const { fetchImpl, base, keyRequest } = requests(baseUrl, options);
    const [vkey, proofBytes] = await Promise.all([
      keyRequest,
      fetchBody(fetchImpl, `${base}/api/v1/ledger/entries/${index}/proof`, 'proof'),
    ]);
    const verified = await verifyProof(proofBytes, vkey, { expectedIndex: index, witnesses: options.witnesses, quorum: options.quorum });
    Object.assign(result, {
      witnesses: verified.witnesses,
      ok: true,
      treeSize: verified.treeSize,
      origin: verified.origin,
      keyName: verified.keyName,
      keyId: verified.keyId,
      entry: verified.entry,
    });
  } catch (error) {
    result.reason = error instanceof VerifyError ? error.message : `unexpected error: ${error}`;
  }
  return result;
}

// ---- many entries at once: digital-village/batch-proof@v1 (ledger/batch.py) ---------------

/** Sorted distinct indexes written as the batch route reads them: "1,3-6,9". */
export function indexRanges(indexes) {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b);
  const terms = [];
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    terms.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
    i = j;
  }
  return terms.join(',');
}

function entryBytes(item) {
  if (typeof item.entry === 'string') return encoder.encode(item.entry);
  if (typeof item.entry_base64 === 'string') return decodeBase64(item.entry_base64, `entry ${item.index}`);
  fail(`malformed batch proof: entry ${item.index} carries no bytes`);
}

/**
 * Check a batch proof document (parsed JSON) against a verifier key string, offline.
 * Throws VerifyError when the document or its checkpoint fails; otherwise returns the
 * checkpoint and a Map index → {ok, entry, reason, pending}, one per entry the document
 * answers for: an entry whose own inclusion fails is ok: false with its reason, the others
 * stand. `seen` ({size, root} of a checkpoint this reader verified earlier) catches an old
 * checkpoint served as current, and two roots for one size.
 */
export async function verifyBatch(document, vkey, { seen, witnesses, quorum } = {}) {
  const key = await parseVerifierKey(vkey);
  if (document === null || typeof document !== 'object') fail('malformed batch proof: not a JSON object');
  if (document.format !== 'digital-village/batch-proof@v1') fail(`malformed batch proof: unknown format ${JSON.stringify(document.format)}`);
  if (typeof document.checkpoint !== 'string') fail('malformed batch proof: no checkpoint');
  const checkpoint = parseCheckpoint(await openNote(encoder.encode(document.checkpoint), key));
  if (checkpoint.treeSize > BigInt(Number.MAX_SAFE_INTEGER)) fail('tree size is too large to show');
  const treeSize = Number(checkpoint.treeSize);
  if (document.size !== treeSize) fail(`malformed batch proof: it says size ${document.size}, its checkpoint ${treeSize}`);
  const root = encodeBase64(checkpoint.rootHash);
  if (seen && Number.isSafeInteger(seen.size)) {
    if (treeSize < seen.size) {
      fail(`the log's checkpoint (size ${treeSize}) is older than one this browser verified before (size ${seen.size}): an old checkpoint is being served as current`);
    }
    if (treeSize === seen.size && root !== seen.root) fail(`two different roots for the log at size ${treeSize}: the log was rewritten`);
  }
  if (!Array.isArray(document.hashes) || !Array.isArray(document.entries)) fail('malformed batch proof: no hashes or entries');
  const hashes = document.hashes.map((text, position) => {
    const hash = decodeBase64(String(text), `malformed batch proof: hash ${position}`);
    if (hash.length !== HASH_SIZE) fail(`malformed batch proof: hash ${position} has ${hash.length} bytes, expected 32`);
    return hash;
  });
  const results = new Map();
  for (const item of document.entries) {
    const index = item?.index;
    if (!Number.isSafeInteger(index) || index < 0) fail('malformed batch proof: an entry without a valid index');
    try {
      const bytes = entryBytes(item);
      if (!Array.isArray(item.path) || item.path.length > MAX_PROOF_HASHES) fail(`malformed batch proof: entry ${index} has no valid path`);
      const path = item.path.map((position) => {
        if (!Number.isSafeInteger(position) || position < 0 || position >= hashes.length) fail(`malformed batch proof: entry ${index} names hash ${position}`);
        return hashes[position];
      });
      try {
        await verifyInclusion(await hashLeaf(bytes), BigInt(index), checkpoint.treeSize, path, checkpoint.rootHash);
      } catch (error) {
        if (!(error instanceof VerifyError)) throw error;
        fail(`entry is not proven at index ${index} of ${JSON.stringify(checkpoint.origin)} size ${treeSize}: ${error.message}`);
      }
      let entry;
      try {
        entry = JSON.parse(strictUtf8.decode(bytes));
      } catch {
        fail(`the proven entry ${index} is not JSON`);
      }
      results.set(index, { ok: true, entry, reason: null, pending: false });
    } catch (error) {
      if (!(error instanceof VerifyError)) throw error;
      results.set(index, { ok: false, entry: null, reason: error.message, pending: false });
    }
  }
  for (const index of document.pending ?? []) {
    results.set(index, {
      ok: false,
      entry: null,
      pending: true,
      reason: `no checkpoint covers entry ${index} yet: the log's newest checkpoint has size ${treeSize}`,
    });
  }
  for (const index of document.missing ?? []) {
    results.set(index, {
      ok: false,
      entry: null,
      pending: false,
      reason: `the log has no entry ${index}, yet its checkpoint of size ${treeSize} covers it: the entry was removed`,
    });
  }
  // How many entries the server says it stores: more than the checkpoint covers, for longer
  // than a new checkpoint takes to appear, means an old checkpoint is served as current.
  const logSize = Number.isSafeInteger(document.log_size) ? document.log_size : null;
  const witnessed = witnesses?.length ? await checkCosignatures(encoder.encode(document.checkpoint), witnesses, quorum) : null;
  return { treeSize, root, logSize, origin: checkpoint.origin, keyName: key.name, keyId: toHex(key.keyId), results, witnesses: witnessed };
}

/**
 * Fetch one batch proof of `indexes` from the server at `baseUrl` ('' for this site) and
 * verify it. Never throws: resolves to {ok, treeSize, root, logSize, origin, keyName, keyId,
 * reason, results}, where results maps every asked index to {ok, entry, reason, pending}; ok is true
 * when the checkpoint verified (each entry still has its own outcome).
 * Options: vkey (pin a verifier key), seen ({size, root}, see verifyBatch), witnesses and
 * quorum (outcome.witnesses, see checkCosignatures), fetch (tests).
 */
export async function verifyEntries(baseUrl, indexes, options = {}) {
  const outcome = { ok: false, treeSize: null, root: null, logSize: null, origin: null, keyName: null, keyId: null, reason: null, results: new Map(), witnesses: null };
  const wanted = [...new Set(indexes)];
  try {
    for (const index of wanted) {
      if (!Number.isSafeInteger(index) || index < 0) fail(`entry index ${JSON.stringify(index)} is not a non-negative integer`);
    }
    if (!globalThis.crypto?.subtle) fail('this page has no WebCrypto (it needs https://); verify the downloaded proofs with dv verify');
    const { fetchImpl, base, keyRequest } = requests(baseUrl, options);
    const [vkey, body] = await Promise.all([
      keyRequest,
      fetchBody(fetchImpl, `${base}/api/v1/ledger/proofs?indexes=${indexRanges(wanted)}`, 'proofs'),
    ]);
    let document;
    try {
      document = JSON.parse(strictUtf8.decode(body));
    } catch {
      fail('malformed batch proof: not JSON');
    }
    const verified = await verifyBatch(document, vkey, { seen: options.seen, witnesses: options.witnesses, quorum: options.quorum });
    Object.assign(outcome, verified, { ok: true });
    for (const index of wanted) {
      if (!outcome.results.has(index)) {
        outcome.results.set(index, { ok: false, entry: null, pending: false, reason: `the server's answer leaves out entry ${index}` });
      }
    }
  } catch (error) {
    outcome.reason = error instanceof VerifyError ? error.message : `unexpected error: ${error}`;
    outcome.results = new Map(wanted.map((index) => [index, { ok: false, entry: null, pending: false, reason: outcome.reason }]));
  }
  return outcome;
}
