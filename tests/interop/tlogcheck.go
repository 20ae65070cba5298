// Command tlogcheck verifies a Digital Village log with Go's own transparency-log code
// (golang.org/x/mod/sumdb/note and sumdb/tlog), as an independent implementation would.
//
// It reads one JSON file (written by tests/ledger/test_go_interop.py) and checks: the signed
// checkpoint opens with the verifier key; the entries hash to the checkpoint's root; every
// stored tree hash equals the one Go stores at the same index; every inclusion proof and
// consistency proof verifies. It prints "ok" and a summary, or the first failure (exit 1).
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index int64    `json:"index"`
	Proof []string `json:"proof"`
}

type consistency struct {
	OldSize int64    `json:"old_size"`
	OldRoot string   `json:"old_root"`
	Proof   []string `json:"proof"`
}

type input struct {
	Vkey         string            `json:"vkey"`
	Checkpoint   string            `json:"checkpoint"`
	Entries      []string          `json:"entries"`
	StoredHashes map[string]string `json:"stored_hashes"`
	Inclusion    []inclusion       `json:"inclusion"`
	Consistency  []consistency     `json:"consistency"`
}

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func hash(b64 string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != tlog.HashSize {
		fail("bad hash %q", b64)
	}
	var h tlog.Hash
	copy(h[:], raw)
	return h
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		fail("%v", err)
	}
	verifier, err := note.NewVerifier(in.Vkey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	opened, err := note.Open([]byte(in.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(opened.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	root := hash(lines[2])

	stored := map[int64]tlog.Hash{}
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			out[i] = stored[idx]
		}
		return out, nil
	})
	for n, b64 := range in.Entries {
		entry, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			fail("entry %d: %v", n, err)
		}
		hashes, err := tlog.StoredHashes(int64(n), entry, reader)
		if err != nil {
			fail("entry %d: %v", n, err)
		}
		first := tlog.StoredHashCount(int64(n))
		for i, h := range hashes {
			stored[first+int64(i)] = h
		}
	}
	for key, b64 := range in.StoredHashes {
		idx, _ := strconv.ParseInt(key, 10, 64)
		if stored[idx] != hash(b64) {
			fail("stored hash %d differs from Go's", idx)
		}
	}
	if int64(len(in.Entries)) != size {
		fail("checkpoint size %d but %d entries", size, len(in.Entries))
	}
	computed, err := tlog.TreeHash(size, reader)
	if err != nil || computed != root {
		fail("root of %d entries differs from the checkpoint's", size)
	}
	for _, inc := range in.Inclusion {
		proof := make(tlog.RecordProof, len(inc.Proof))
		for i, p := range inc.Proof {
			proof[i] = hash(p)
		}
		leaf := stored[tlog.StoredHashIndex(0, inc.Index)]
		if err := tlog.CheckRecord(proof, size, root, inc.Index, leaf); err != nil {
			fail("inclusion of %d: %v", inc.Index, err)
		}
	}
	for _, c := range in.Consistency {
		proof := make(tlog.TreeProof, len(c.Proof))
		for i, p := range c.Proof {
			proof[i] = hash(p)
		}
		if err := tlog.CheckTree(proof, size, root, c.OldSize, hash(c.OldRoot)); err != nil {
			fail("consistency from %d: %v", c.OldSize, err)
		}
	}
	fmt.Printf("ok: %d entries, %d stored hashes, %d inclusion and %d consistency proofs\n",
		size, len(in.StoredHashes), len(in.Inclusion), len(in.Consistency))
}
