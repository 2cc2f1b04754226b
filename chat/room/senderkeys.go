package room

// This file is the only place that touches chat/e2e's sender keys, so that
// the rest of the package deals in bytes.

import (
	"crypto/rand"
	"time"

	"github.com/parley-im/parley/chat/e2e"
)

// newChain makes a fresh sending chain and returns its serialized state and
// its distribution message.
func newChain() (state, dist []byte, err error) {
	c, err := e2e.NewSenderChain(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if state, err = c.MarshalBinary(); err != nil {
		return nil, nil, err
	}
	return state, c.Distribution(), nil
}

// seal encrypts plaintext with the chain in state, returning the message and
// the advanced state.
func seal(state, plaintext, ad []byte) (msg, next []byte, err error) {
	c := new(e2e.SenderChain)
	if err := c.UnmarshalBinary(state); err != nil {
		return nil, nil, err
	}
	if msg, err = c.Seal(plaintext, ad); err != nil {
		return nil, nil, err
	}
	next, err = c.MarshalBinary()
	return msg, next, err
}

// newReceiver returns the serialized receiving state for a distribution.
func newReceiver(dist []byte) ([]byte, error) {
	r, err := e2e.NewSenderReceiver(dist)
	if err != nil {
		return nil, err
	}
	return r.MarshalBinary()
}

// open decrypts msg with the receiving state, returning the plaintext and
// the advanced state.
func open(state, msg, ad []byte) (plain, next []byte, err error) {
	r := new(e2e.SenderReceiver)
	if err := r.UnmarshalBinary(state); err != nil {
		return nil, nil, err
	}
	if plain, err = r.Open(msg, ad, time.Now()); err != nil {
		return nil, nil, err
	}
	next, err = r.MarshalBinary()
	return plain, next, err
}
