package e2e

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
)

const (
	sessionFixedSize = 8 + 1 + 7*keySize + 3*4 + 8 + keySize + sigSize + 4 + 4 + 1
	skippedEntrySize = keySize + 4 + keySize + 8 + 1
	channelFixedSize = 1 + 1 + 2*ed25519.PublicKeySize + 8 + 8
	// sessionPQSize is what a PQXDH session adds (state version 2): the
	// KEM prekey id and kind, and the ciphertext a pending session repeats.
	sessionPQSize = 4 + 1 + KEMCiphertextSize
	// maxChannelStateSize is the hard limit of an encoded Channel.
	maxChannelStateSize = channelFixedSize + (1+MaxPreviousSessions)*(sessionFixedSize+sessionPQSize+maxPrevChains*keySize) +
		1 + 2 + MaxSkippedKeys*skippedEntrySize + 1 + maxSeenBaseKeys*keySize
	// channelStateVersion is the version of the Channel encoding: 2 adds
	// the PQXDH fields of sessions (flagPQ). Version 1 still decodes.
	channelStateVersion = 2
)

// Session flags in the encoded state.
const (
	flagInitiator = 1 << iota
	flagPending
	flagClosed
	flagHasDHr
	flagHasCKs
	flagHasCKr
	flagOTPK
	flagPQ  // state version 2 only
	flagAll = 1<<iota - 1
)

func appendSession(b []byte, s *session) []byte {
	b = appendU64(b, s.gen)
	var f byte
	for _, x := range []struct {
		on  bool
		bit byte
	}{{s.initiator, flagInitiator}, {s.pending, flagPending}, {s.closed, flagClosed}, {s.hasDHr, flagHasDHr},
		{s.hasCKs, flagHasCKs}, {s.hasCKr, flagHasCKr}, {s.pre.hasOTPK, flagOTPK}, {s.pq, flagPQ}} {
		if x.on {
			f |= x.bit
		}
	}
	b = append(b, f)
	for _, k := range []*[keySize]byte{&s.baseKey, &s.rk, &s.dhs.priv, &s.dhs.pub, &s.dhr, &s.cks, &s.ckr} {
		b = append(b, k[:]...)
	}
	b = appendU32(b, s.ns)
	b = appendU32(b, s.nr)
	b = appendU32(b, s.pn)
	b = appendU64(b, uint64(s.retired))
	b = append(b, s.pre.identityDH[:]...)
	b = append(b, s.pre.identitySig[:]...)
	b = appendU32(b, s.pre.spkID)
	b = appendU32(b, s.pre.otpkID)
	b = append(b, byte(len(s.prevRecv)))
	for _, p := range s.prevRecv {
		b = append(b, p[:]...)
	}
	if s.pq {
		b = appendU32(b, s.pre.kemID)
		b = append(b, s.pre.kemKind)
		if s.pending {
			b = append(b, s.pre.kemCT...)
		}
	}
	return b
}

func readSession(d *decoder, ver byte) (*session, error) {
	s := new(session)
	s.gen = d.u64()
	f := d.u8()
	all := byte(flagAll)
	if ver < channelStateVersion {
		all &^= flagPQ
	}
	if f&^all != 0 {
		return nil, fmt.Errorf("%w: unknown session flags %#x", ErrMalformed, f)
	}
	s.initiator = f&flagInitiator != 0
	s.pending = f&flagPending != 0
	s.closed = f&flagClosed != 0
	s.hasDHr = f&flagHasDHr != 0
	s.hasCKs = f&flagHasCKs != 0
	s.hasCKr = f&flagHasCKr != 0
	s.pre.hasOTPK = f&flagOTPK != 0
	for _, k := range []*[keySize]byte{&s.baseKey, &s.rk, &s.dhs.priv, &s.dhs.pub, &s.dhr, &s.cks, &s.ckr} {
		d.key(k)
	}
	s.ns = d.u32()
	s.nr = d.u32()
	s.pn = d.u32()
	s.retired = int64(d.u64())
	d.key(&s.pre.identityDH)
	copy(s.pre.identitySig[:], d.take(sigSize))
	s.pre.spkID = d.u32()
	s.pre.otpkID = d.u32()
	s.pq = f&flagPQ != 0
	s.pre.gen = s.gen
	s.pre.ephemeral = s.baseKey
	n := int(d.u8())
	if n > maxPrevChains {
		return nil, fmt.Errorf("%w: %d previous chains", ErrMalformed, n)
	}
	for range n {
		var p [keySize]byte
		d.key(&p)
		s.prevRecv = append(s.prevRecv, p)
	}
	if s.pq {
		s.pre.pq = true
		s.pre.kemID = d.u32()
		s.pre.kemKind = d.u8()
		if !d.failed && s.pending && s.pre.kemKind != kemLastResort && s.pre.kemKind != kemOneTime {
			return nil, fmt.Errorf("%w: bad KEM prekey kind", ErrMalformed)
		}
		if s.pending {
			s.pre.kemCT = bytes.Clone(d.take(KEMCiphertextSize))
		}
	}
	if d.failed {
		return nil, fmt.Errorf("%w: truncated session", ErrMalformed)
	}
	if s.pending && !s.initiator {
		return nil, fmt.Errorf("%w: pending session not initiated locally", ErrMalformed)
	}
	return s, nil
}

// MarshalBinary encodes the channel, keys included: store it as secret
// data, in the same transaction as the message that changed it.
func (c *Channel) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, channelFixedSize+(1+len(c.old))*(sessionFixedSize+4*keySize)+len(c.skipped)*skippedEntrySize+len(c.seen)*keySize+8)
	b = append(b, channelStateVersion)
	var f byte
	if c.bound {
		f |= 1
	}
	if c.cur != nil {
		f |= 2
	}
	if c.pqOnly {
		f |= 4
	}
	b = append(b, f)
	b = append(b, c.local[:]...)
	b = append(b, c.remote[:]...)
	b = appendU64(b, c.maxGen)
	b = appendU64(b, uint64(c.last))
	if c.cur != nil {
		b = appendSession(b, c.cur)
	}
	b = append(b, byte(len(c.old)))
	for _, s := range c.old {
		b = appendSession(b, s)
	}
	b = appendU16(b, uint16(len(c.skipped)))
	for i := range c.skipped {
		k := &c.skipped[i]
		b = append(b, k.dh[:]...)
		b = appendU32(b, k.n)
		b = append(b, k.mk[:]...)
		b = appendU64(b, uint64(k.created))
		role := byte(0)
		if k.initiator {
			role = 1
		}
		b = append(b, role)
	}
	b = append(b, byte(len(c.seen)))
	for _, k := range c.seen {
		b = append(b, k[:]...)
	}
	return b, nil
}

// UnmarshalBinary decodes a channel encoded by MarshalBinary, replacing
// the receiver's contents only on success.
func (c *Channel) UnmarshalBinary(data []byte) error {
	n, err := unmarshalChannel(data)
	if err != nil {
		return fmt.Errorf("e2e: unmarshal channel: %w", err)
	}
	*c = *n
	return nil
}

func unmarshalChannel(data []byte) (*Channel, error) {
	if len(data) > maxChannelStateSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	if len(data) > 0 && data[0] != 1 && data[0] != channelStateVersion {
		return nil, fmt.Errorf("%w %d", ErrUnknownVersion, data[0])
	}
	d := decoder{b: data}
	ver := d.u8()
	f := d.u8()
	known := byte(3)
	if ver == channelStateVersion {
		known |= 4 // PQXDH only
	}
	if f&^known != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrMalformed, f)
	}
	c := &Channel{bound: f&1 != 0, pqOnly: f&4 != 0}
	copy(c.local[:], d.take(ed25519.PublicKeySize))
	copy(c.remote[:], d.take(ed25519.PublicKeySize))
	c.maxGen = d.u64()
	c.last = int64(d.u64())
	if f&2 != 0 {
		s, err := readSession(&d, ver)
		if err != nil {
			return nil, err
		}
		c.cur = s
	}
	nold := int(d.u8())
	if nold > MaxPreviousSessions {
		return nil, fmt.Errorf("%w: %d previous sessions", ErrMalformed, nold)
	}
	for range nold {
		s, err := readSession(&d, ver)
		if err != nil {
			return nil, err
		}
		c.old = append(c.old, s)
	}
	nsk := int(d.u16())
	if nsk > MaxSkippedKeys {
		return nil, fmt.Errorf("%w: %d skipped keys", ErrMalformed, nsk)
	}
	if nsk > 0 && !d.failed && len(d.b) >= nsk*skippedEntrySize {
		c.skipped = make([]skippedKey, 0, nsk)
	}
	for range nsk {
		var k skippedKey
		d.key(&k.dh)
		k.n = d.u32()
		d.key(&k.mk)
		k.created = int64(d.u64())
		switch d.u8() {
		case 0:
		case 1:
			k.initiator = true
		default:
			return nil, fmt.Errorf("%w: bad skipped key role", ErrMalformed)
		}
		if d.failed {
			return nil, fmt.Errorf("%w: truncated", ErrMalformed)
		}
		c.skipped = append(c.skipped, k)
	}
	nseen := int(d.u8())
	if nseen > maxSeenBaseKeys {
		return nil, fmt.Errorf("%w: %d base keys", ErrMalformed, nseen)
	}
	for range nseen {
		var k [keySize]byte
		d.key(&k)
		c.seen = append(c.seen, k)
	}
	if !d.ok() {
		return nil, fmt.Errorf("%w: wrong length", ErrMalformed)
	}
	if !c.bound && (c.cur != nil || len(c.old) > 0) {
		return nil, fmt.Errorf("%w: sessions without identities", ErrMalformed)
	}
	for _, s := range append([]*session{c.cur}, c.old...) {
		if s != nil && s.pq {
			s.pre.initiator = c.local // a pending session is ours: we initiated it
			c.pqOnly = true
		}
	}
	return c, nil
}
