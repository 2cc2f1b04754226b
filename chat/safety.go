package chat

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// safetyIterations is how many times each half is hashed: it makes a
// collision search against one half cost as much as in Signal's scheme.
const safetyIterations = 5200

// SafetyNumber returns the 60-digit number two users compare to verify each
// other: a 30-digit fingerprint of each Ed25519 identity key, ordered so both
// sides print the same number. Each fingerprint hashes the label, the key and
// the peer ID with SHA-512 safetyIterations times and reads six 5-byte chunks
// of the result as big-endian integers modulo 100000. See docs/PROTOCOL.md.
func SafetyNumber(a, b peer.ID) (string, error) {
	fa, err := fingerprint(a)
	if err != nil {
		return "", err
	}
	fb, err := fingerprint(b)
	if err != nil {
		return "", err
	}
	if fb < fa {
		fa, fb = fb, fa
	}
	digits := fa + fb
	groups := make([]string, 0, 12)
	for i := 0; i < len(digits); i += 5 {
		groups = append(groups, digits[i:i+5])
	}
	return strings.Join(groups, " "), nil
}

func fingerprint(id peer.ID) (string, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return "", fmt.Errorf("peer ID %s: %w", id, err)
	}
	raw, err := pub.Raw()
	if err != nil {
		return "", err
	}
	h := sha512.New()
	h.Write([]byte("parley/v1 safety-number"))
	h.Write(raw)
	h.Write([]byte(id))
	sum := h.Sum(nil)
	for range safetyIterations - 1 {
		h.Reset()
		h.Write(sum)
		h.Write(raw)
		sum = h.Sum(sum[:0])
	}
	var out bytes.Buffer
	for i := range 6 {
		var chunk [8]byte
		copy(chunk[3:], sum[i*5:i*5+5])
		fmt.Fprintf(&out, "%05d", binary.BigEndian.Uint64(chunk[:])%100000)
	}
	return out.String(), nil
}
