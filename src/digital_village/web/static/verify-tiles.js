// Proofs from a mirror of the log (docs/LEDGER.md, "Mirrors"): C2SP tlog-tiles, in the browser.
//
// When the operator configured a mirror (DV_LEDGER_MIRROR_URL, announced as `mirror_url` by
// GET /api/v1/ledger), the page's verifier takes its proofs from the mirror instead of the
// county's server: `viaMirror` gives verify.js a `fetch` that answers the batch-proof request
// (/api/v1/ledger/proofs) with a digital-village/batch-proof@v1 document built from the mirror's
// checkpoint, tiles and entry bundles. Nothing built here is trusted: verify.js checks the
// checkpoint's signature and every entry's inclusion in it exactly as for the server's own
// answer. Entries the mirror's copy does not cover yet come back as pending.
//
// A subtree hash of tree level 8·L + r is the tree hash of 2**r consecutive hashes of a tile at
// level L: the full tile when the tree has it, else the tree's partial tile (.p/<width>).

import { hashChildren } from './verify.js';

const TILE_WIDTH = 256;
const HASH_SIZE = 32;
const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

class MirrorError extends Error {}

/** N as tlog-tiles writes it: three-digit path elements, all but the last with an x. */
export function tileIndexPath(index) {
  let digits = String(index);
  digits = '0'.repeat((3 - (digits.length % 3)) % 3) + digits;
  const groups = digits.match(/.{3}/g);
  return groups.map((group, i) => (i < groups.length - 1 ? `x${group}` : group)).join('/');
}

function tilePath(level, index, width) {
  const name = level === null ? 'entries' : String(level);
  return `tile/${name}/${tileIndexPath(index)}${width < TILE_WIDTH ? `.p/${width}` : ''}`;
}

/** The indexes a batch-proof request names: "3,7,10-20". */
function parseRanges(text) {
  const indexes = [];
  for (const term of String(text ?? '').split(',')) {
    const [first, last] = term.split('-').map(Number);
    for (let index = first; index <= (last ?? first); index++) indexes.push(index);
  }
  return indexes;
}

/** The mirror's resources, each fetched once. */
function mirrorReader(prefix, fetchImpl) {
  const fetched = new Map();
  return (path) => {
    if (!fetched.has(path)) {
      fetched.set(path, (async () => {
        let response;
        try {
          response = await fetchImpl(prefix + path, { cache: 'no-store' });
        } catch (error) {
          throw new MirrorError(`could not fetch ${path} from the mirror: ${error.message || error}`);
        }
        if (!response.ok) throw new MirrorError(`could not fetch ${path} from the mirror: HTTP ${response.status}`);
        return new Uint8Array(await response.arrayBuffer());
      })());
    }
    return fetched.get(path);
  };
}

/** Split [low, high) into maximal complete subtrees, left to right: [level, index] pairs. */
function completeSubtrees(low, high) {
  const nodes = [];
  while (low < high) {
    let size = 1;
    while (size * 2 <= high - low && low % (size * 2) === 0) size *= 2;
    nodes.push([Math.log2(size), low / size]);
    low += size;
  }
  return nodes;
}

async function rootOf(hashes) {
  let level = hashes;
  while (level.length > 1) {
    const next = [];
    for (let i = 0; i < level.length; i += 2) next.push(await hashChildren(level[i], level[i + 1]));
    level = next;
  }
  return level[0];
}

/** The tree hash of leaves [low, high) of a tree of `size` leaves, from its tiles. */
async function rangeHash(read, size, low, high) {
  const parts = [];
  for (const [level, index] of completeSubtrees(low, high)) {
    const tileLevel = Math.floor(level / 8);
    const span = 2 ** (level % 8);
    const first = index * span; // the first hash of tile level `tileLevel` it spans
    const tileIndex = Math.floor(first / TILE_WIDTH);
    const available = Math.floor(size / TILE_WIDTH ** tileLevel) - tileIndex * TILE_WIDTH;
    const width = Math.min(available, TILE_WIDTH);
    const tile = await read(tilePath(tileLevel, tileIndex, width));
    if (tile.length !== width * HASH_SIZE) throw new MirrorError(`the mirror's ${tilePath(tileLevel, tileIndex, width)} has ${tile.length} bytes`);
    const offset = first % TILE_WIDTH;
    const hashes = [];
    for (let i = offset; i < offset + span; i++) hashes.push(tile.slice(i * HASH_SIZE, (i + 1) * HASH_SIZE));
    parts.push(await rootOf(hashes));
  }
  let node = parts[parts.length - 1];
  for (let i = parts.length - 2; i >= 0; i--) node = await hashChildren(parts[i], node);
  return node;
}

/** The sibling ranges of leaf `index`'s RFC 9162 inclusion path in a tree of `size`, leaf first. */
function inclusionRanges(index, size) {
  const ranges = [];
  let low = 0;
  let high = size;
  while (high - low > 1) {
    let split = 1;
    while (split * 2 < high - low) split *= 2;
    split += low;
    if (index < split) {
      ranges.push([split, high]);
      high = split;
    } else {
      ranges.push([low, split]);
      low = split;
    }
  }
  return ranges.reverse();
}

function entries(bundle, path) {
  const found = [];
  let offset = 0;
  while (offset < bundle.length) {
    if (offset + 2 > bundle.length) throw new MirrorError(`the mirror's ${path} is truncated`);
    const length = (bundle[offset] << 8) | bundle[offset + 1];
    offset += 2;
    if (offset + length > bundle.length) throw new MirrorError(`the mirror's ${path} is truncated`);
    found.push(bundle.slice(offset, offset + length));
    offset += length;
  }
  return found;
}

function base64(bytes) {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** A digital-village/batch-proof@v1 document for `indexes`, built from the mirror's tiles. */
export async function batchFromTiles(prefix, indexes, fetchImpl) {
  const read = mirrorReader(prefix, fetchImpl);
  const checkpoint = await read('checkpoint');
  const text = strictUtf8.decode(checkpoint);
  const size = Number(text.split('\n')[1]);
  if (!Number.isSafeInteger(size) || size < 1) throw new MirrorError('the mirror holds no checkpoint of a tree');
  const hashes = [];
  const positions = new Map();
  const proven = [];
  const pending = [];
  for (const index of indexes) {
    if (index >= size) {
      pending.push(index);
      continue;
    }
    const bundleIndex = Math.floor(index / TILE_WIDTH);
    const bundlePath = tilePath(null, bundleIndex, Math.min(size - bundleIndex * TILE_WIDTH, TILE_WIDTH));
    const bytes = entries(await read(bundlePath), bundlePath)[index % TILE_WIDTH];
    if (bytes === undefined) throw new MirrorError(`the mirror's ${bundlePath} lacks entry ${index}`);
    const path = [];
    for (const [low, high] of inclusionRanges(index, size)) {
      const key = `${low}-${high}`;
      if (!positions.has(key)) {
        positions.set(key, hashes.length);
        hashes.push(base64(await rangeHash(read, size, low, high)));
      }
      path.push(positions.get(key));
    }
    const item = { index, path };
    try {
      item.entry = strictUtf8.decode(bytes);
    } catch {
      item.entry_base64 = base64(bytes);
    }
    proven.push(item);
  }
  return {
    format: 'digital-village/batch-proof@v1',
    checkpoint: text,
    size,
    hashes,
    entries: proven,
    pending,
    missing: [],
  };
}

/** A fetch that answers batch-proof requests from the mirror at `mirrorUrl`, and passes
 * every other request on. */
export function mirrorFetch(mirrorUrl, fetchImpl = globalThis.fetch.bind(globalThis)) {
  const prefix = String(mirrorUrl).replace(/\/*$/, '/');
  return async (url, init) => {
    const asked = new URL(url, globalThis.location?.href);
    if (!asked.pathname.endsWith('/api/v1/ledger/proofs')) return fetchImpl(url, init);
    try {
      const document = await batchFromTiles(prefix, parseRanges(asked.searchParams.get('indexes')), fetchImpl);
      return new Response(encoder.encode(JSON.stringify(document)), { status: 200, headers: { 'Content-Type': 'application/json' } });
    } catch (error) {
      const detail = error instanceof MirrorError ? error.message : `the mirror's copy is unreadable: ${error}`;
      return new Response(JSON.stringify({ detail }), { status: 502, headers: { 'Content-Type': 'application/problem+json' } });
    }
  };
}

const announced = new Map();

/** Options for verify.js: {fetch} through the mirror the server at `base` announces, or {}. */
export function viaMirror(base, fetchImpl = globalThis.fetch.bind(globalThis)) {
  if (!announced.has(base)) {
    announced.set(base, (async () => {
      try {
        const response = await fetchImpl(`${base}/api/v1/ledger`, { credentials: 'same-origin' });
        const info = response.ok ? await response.json() : {};
        return typeof info.mirror_url === 'string' && info.mirror_url ? { fetch: mirrorFetch(info.mirror_url, fetchImpl) } : {};
      } catch {
        return {};
      }
    })());
  }
  return announced.get(base);
}
