package group

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// MarshalChain returns the state of author's sender chain in this epoch (a
// ChainState): what Seal or Open changed. A caller can store the epoch once
// (MarshalBinary) and then, per message, only the chain that moved, which
// costs a few dozen bytes instead of the whole roster.
func (e *Epoch) MarshalChain(author peer.ID) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.chains[author]
	if ch == nil {
		return nil, fmt.Errorf("%w: no chain of %s", ErrNotMember, author)
	}
	cs := &wirepb.ChainState{Author: []byte(author), Generation: ch.gen, Head: append([]byte(nil), ch.head[:]...)}
	for g := ch.gen - min(ch.gen, MaxSkip); g < ch.gen; g++ {
		if k, ok := ch.skipped[g]; ok {
			cs.Skipped = append(cs.Skipped, &wirepb.SkippedKey{Generation: g, Key: append([]byte(nil), k[:]...)})
		}
	}
	return marshal(cs), nil
}

// RestoreChain replaces one sender chain of this epoch by a state
// MarshalChain returned later than the state the epoch was restored from.
// It refuses a state of a non-member, a malformed one, and one that would
// move the chain backwards (a generation below the current one): a stale
// state must never make a used message key usable again.
func (e *Epoch) RestoreChain(b []byte) error {
	var cs wirepb.ChainState
	if err := unmarshal("chain state", b, MaxEpochStateSize, &cs); err != nil {
		return err
	}
	id, err := parsePeerID("chain author", cs.Author)
	if err != nil {
		return fmt.Errorf("chain state: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.chains[id]
	if cur == nil {
		return fmt.Errorf("%w: chain state of %s", ErrNotMember, id)
	}
	if len(cs.Head) != SecretSize || len(cs.Skipped) > MaxSkip {
		return fmt.Errorf("%w: chain state of %s", ErrInvalid, id)
	}
	if cs.Generation < cur.gen {
		return fmt.Errorf("%w: chain state of %s at generation %d, behind %d", ErrInvalid, id, cs.Generation, cur.gen)
	}
	ch := &chain{gen: cs.Generation}
	copy(ch.head[:], cs.Head)
	for _, sk := range cs.Skipped {
		if sk.Generation >= ch.gen || ch.gen-sk.Generation > MaxSkip || len(sk.Key) != SecretSize {
			return fmt.Errorf("%w: chain state: skipped key of %s", ErrInvalid, id)
		}
		if ch.skipped == nil {
			ch.skipped = make(map[uint32][SecretSize]byte)
		}
		var k [SecretSize]byte
		copy(k[:], sk.Key)
		ch.skipped[sk.Generation] = k
	}
	// Erase what the old state held.
	cur.head = [SecretSize]byte{}
	for g := range cur.skipped {
		delete(cur.skipped, g)
	}
	e.chains[id] = ch
	return nil
}
