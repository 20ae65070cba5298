// Command tilecheck verifies a Digital Village log from its C2SP tlog-tiles alone, with Go's
// own transparency-log code (golang.org/x/mod/sumdb/note and sumdb/tlog), as any tlog-tiles
// client would.
//
//	tilecheck [-previous FILE] VKEY SOURCE
//
// SOURCE is the log's tile prefix (http://host/ledger/) or a folder holding a copy of it (a
// mirror). It opens SOURCE's checkpoint with the verifier key, reads hash tiles through
// tlog.TileHashReader (which checks every tile it loads against the checkpoint's tree), checks
// that the tiles hash to the checkpoint's root, then proves and checks every entry of every
// entry bundle with tlog.ProveRecord and tlog.CheckRecord. With -previous, an earlier
// checkpoint of the same log must be consistent with it (tlog.ProveTree, tlog.CheckTree).
// It prints "ok: ..." or the first failure (exit 1).
package main

import (
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

type source string

// read returns the resource at path under the log's prefix.
func (s source) read(path string) ([]byte, error) {
	prefix := string(s)
	if strings.HasPrefix(prefix, "http://") || strings.HasPrefix(prefix, "https://") {
		response, err := http.Get(strings.TrimSuffix(prefix, "/") + "/" + path)
		if err != nil {
			return nil, err
		}
		defer response.Body.Close()
		if response.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", path, response.Status)
		}
		return io.ReadAll(response.Body)
	}
	return os.ReadFile(filepath.Join(prefix, filepath.FromSlash(path)))
}

// tilePath is a tlog-tiles path: sumdb's tile/H/L/N[.p/W] without the height.
func tilePath(t tlog.Tile) string {
	return strings.Replace(t.Path(), fmt.Sprintf("tile/%d/", height), "tile/", 1)
}

type tileReader struct {
	src   source
	cache map[string][]byte
}

func (r *tileReader) Height() int { return height }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		path := tilePath(t)
		if data, ok := r.cache[path]; ok {
			out[i] = data
			continue
		}
		data, err := r.src.read(path)
		if err != nil {
			return nil, err
		}
		r.cache[path] = data
		out[i] = data
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

type checkpoint struct {
	origin string
	tree   tlog.Tree
}

func openCheckpoint(raw []byte, verifier note.Verifier, what string) checkpoint {
	opened, err := note.Open(raw, note.VerifierList(verifier))
	if err != nil {
		fail("%s: %v", what, err)
	}
	lines := strings.Split(opened.Text, "\n")
	if len(lines) < 4 {
		fail("%s: not a checkpoint", what)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("%s: size: %v", what, err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		fail("%s: root hash %q", what, lines[2])
	}
	var hash tlog.Hash
	copy(hash[:], root)
	return checkpoint{origin: lines[0], tree: tlog.Tree{N: size, Hash: hash}}
}

// bundle reads the entry bundle of width w at index n: uint16 big-endian length-prefixed entries.
func bundle(src source, n, w int64) [][]byte {
	t := tlog.Tile{H: height, L: -1, N: n, W: int(w)}
	path := strings.Replace(tilePath(t), "tile/data/", "tile/entries/", 1)
	raw, err := src.read(path)
	if err != nil {
		fail("entry bundle %s: %v", path, err)
	}
	var entries [][]byte
	for len(raw) > 0 {
		if len(raw) < 2 {
			fail("entry bundle %s: truncated length", path)
		}
		length := int(binary.BigEndian.Uint16(raw))
		if len(raw) < 2+length {
			fail("entry bundle %s: truncated entry", path)
		}
		entries = append(entries, raw[2:2+length])
		raw = raw[2+length:]
	}
	if int64(len(entries)) != w {
		fail("entry bundle %s holds %d entries, not %d", path, len(entries), w)
	}
	return entries
}

func main() {
	previous := flag.String("previous", "", "an earlier signed checkpoint that must be consistent")
	flag.Parse()
	if flag.NArg() != 2 {
		fail("usage: tilecheck [-previous FILE] VKEY SOURCE")
	}
	verifier, err := note.NewVerifier(flag.Arg(0))
	if err != nil {
		fail("verifier key: %v", err)
	}
	src := source(flag.Arg(1))
	raw, err := src.read("checkpoint")
	if err != nil {
		fail("checkpoint: %v", err)
	}
	current := openCheckpoint(raw, verifier, "checkpoint")
	tree := current.tree
	reader := tlog.TileHashReader(tree, &tileReader{src: src, cache: map[string][]byte{}})

	root, err := tlog.TreeHash(tree.N, reader)
	if err != nil {
		fail("tree hash from tiles: %v", err)
	}
	if root != tree.Hash {
		fail("tiles hash to %v, the checkpoint says %v", root, tree.Hash)
	}

	var checked int64
	for n := int64(0); n*256 < tree.N; n++ {
		w := tree.N - n*256
		if w > 256 {
			w = 256
		}
		for i, entry := range bundle(src, n, w) {
			index := n*256 + int64(i)
			proof, err := tlog.ProveRecord(tree.N, index, reader)
			if err != nil {
				fail("proof of entry %d from tiles: %v", index, err)
			}
			if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(entry)); err != nil {
				fail("entry %d: %v", index, err)
			}
			checked++
		}
	}

	summary := ""
	if *previous != "" {
		raw, err := os.ReadFile(*previous)
		if err != nil {
			fail("previous checkpoint: %v", err)
		}
		old := openCheckpoint(raw, verifier, "previous checkpoint")
		if old.origin != current.origin {
			fail("previous checkpoint is of log %q, not %q", old.origin, current.origin)
		}
		proof, err := tlog.ProveTree(tree.N, old.tree.N, reader)
		if err != nil {
			fail("consistency proof from tiles: %v", err)
		}
		if err := tlog.CheckTree(proof, tree.N, tree.Hash, old.tree.N, old.tree.Hash); err != nil {
			fail("size %d is not consistent with the previous size %d: %v", tree.N, old.tree.N, err)
		}
		summary = fmt.Sprintf(", consistent with size %d", old.tree.N)
	}
	fmt.Printf("ok: %s size %d, %d entries verified from tiles%s\n", current.origin, tree.N, checked, summary)
}
