package room

// TEMPORARY: a local sender-key chain used until chat/e2e provides
// SenderChain and SenderReceiver; it is replaced by thin wrappers over them.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
)

const maxSkip = 2000

func chainStep(ck []byte) (mk, next []byte) {
	m := hmac.New(sha256.New, ck)
	m.Write([]byte{1})
	mk = m.Sum(nil)
	m = hmac.New(sha256.New, ck)
	m.Write([]byte{2})
	return mk, m.Sum(nil)
}

func newChain() (state, dist []byte, err error) {
	ck := make([]byte, 32)
	if _, err := rand.Read(ck); err != nil {
		return nil, nil, err
	}
	state = binary.BigEndian.AppendUint32(append([]byte{}, ck...), 0)
	return state, state, nil
}

func seal(state, plaintext, ad []byte) (msg, next []byte, err error) {
	if len(state) != 36 {
		return nil, nil, errors.New("bad chain state")
	}
	it := binary.BigEndian.Uint32(state[32:])
	mk, ck := chainStep(state[:32])
	aead, err := chacha20poly1305.New(mk)
	if err != nil {
		return nil, nil, err
	}
	hdr := binary.BigEndian.AppendUint32(nil, it)
	msg = aead.Seal(hdr, make([]byte, aead.NonceSize()), plaintext, append(hdr, ad...))
	return msg, binary.BigEndian.AppendUint32(ck, it+1), nil
}

// receiver state: ck(32) next(4) then skipped entries it(4) mk(32).
func newReceiver(dist []byte) ([]byte, error) {
	if len(dist) != 36 {
		return nil, errors.New("bad distribution")
	}
	return append([]byte{}, dist...), nil
}

func open(state, msg, ad []byte) (plain, next []byte, err error) {
	if len(state) < 36 || (len(state)-36)%36 != 0 || len(msg) < 4 {
		return nil, nil, errors.New("bad state or message")
	}
	it := binary.BigEndian.Uint32(msg[:4])
	ck, n := state[:32], binary.BigEndian.Uint32(state[32:36])
	skipped := map[uint32][]byte{}
	for b := state[36:]; len(b) > 0; b = b[36:] {
		skipped[binary.BigEndian.Uint32(b)] = b[4:36]
	}
	var mk []byte
	if it < n {
		if mk = skipped[it]; mk == nil {
			return nil, nil, errors.New("replayed or too old")
		}
		delete(skipped, it)
	} else {
		if it-n > maxSkip {
			return nil, nil, errors.New("too far ahead")
		}
		for n < it {
			var k []byte
			k, ck = chainStep(ck)
			skipped[n] = k
			n++
		}
		mk, ck = chainStep(ck)
		n++
	}
	aead, err := chacha20poly1305.New(mk)
	if err != nil {
		return nil, nil, err
	}
	plain, err = aead.Open(nil, make([]byte, aead.NonceSize()), msg[4:], append(append([]byte{}, msg[:4]...), ad...))
	if err != nil {
		return nil, nil, err
	}
	next = binary.BigEndian.AppendUint32(append([]byte{}, ck...), n)
	for k, v := range skipped {
		if len(skipped) > maxSkip && k+maxSkip < n {
			continue
		}
		next = binary.BigEndian.AppendUint32(next, k)
		next = append(next, v...)
	}
	return plain, next, nil
}
