// Command cosigcheck opens a Digital Village checkpoint carrying witness cosignatures with Go's
// own signed-note code (golang.org/x/mod/sumdb/note), as an independent verifier would.
//
// The cosignature/v1 verifier below is written from c2sp.org/tlog-cosignature alone: key hash
// SHA-256(name || "\n" || 0x04 || public key)[:4], signature = 8-byte big-endian timestamp ||
// Ed25519 signature of "cosignature/v1\ntime <t>\n" || the note text. It reads one JSON file
// {"vkey", "witnesses": [vkey...], "checkpoint"} (written by tests/witness/test_interop.py) and
// prints each verified signature as "<name> <timestamp>" (0 for the log's own), or the error
// note.Open gives (exit 1).
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

type input struct {
	Vkey       string   `json:"vkey"`
	Witnesses  []string `json:"witnesses"`
	Checkpoint string   `json:"checkpoint"`
}

type cosignatureV1 struct {
	name    string
	hash    uint32
	key     ed25519.PublicKey
	lastSig *uint64
}

func (v *cosignatureV1) Name() string    { return v.name }
func (v *cosignatureV1) KeyHash() uint32 { return v.hash }

func (v *cosignatureV1) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	timestamp := binary.BigEndian.Uint64(sig[:8])
	message := append([]byte("cosignature/v1\ntime "+strconv.FormatUint(timestamp, 10)+"\n"), msg...)
	if !ed25519.Verify(v.key, message, sig[8:]) {
		return false
	}
	*v.lastSig = timestamp
	return true
}

func parseCosignatureKey(vkey string) (*cosignatureV1, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed witness key")
	}
	name, hexHash, b64 := parts[0], parts[1], parts[2]
	material, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(material) != 33 || material[0] != 0x04 {
		return nil, fmt.Errorf("witness key %s is not a cosignature/v1 Ed25519 key", name)
	}
	digest := sha256.Sum256(append([]byte(name+"\n"), material...))
	hash := binary.BigEndian.Uint32(digest[:4])
	if fmt.Sprintf("%08x", hash) != hexHash {
		return nil, fmt.Errorf("witness key %s: key hash %s does not match", name, hexHash)
	}
	return &cosignatureV1{name: name, hash: hash, key: ed25519.PublicKey(material[1:]), lastSig: new(uint64)}, nil
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	logVerifier, err := note.NewVerifier(in.Vkey)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	verifiers := []note.Verifier{logVerifier}
	cosigners := map[string]*cosignatureV1{}
	for _, vkey := range in.Witnesses {
		v, err := parseCosignatureKey(vkey)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		verifiers = append(verifiers, v)
		cosigners[v.name] = v
	}
	opened, err := note.Open([]byte(in.Checkpoint), note.VerifierList(verifiers...))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for _, sig := range opened.Sigs {
		if v, ok := cosigners[sig.Name]; ok {
			fmt.Println(sig.Name, *v.lastSig)
		} else {
			fmt.Println(sig.Name, 0)
		}
	}
}
