package e2e

import (
	"fmt"
	"io"
	"math"
	"time"
)

// Sender keys: each room member encrypts its room messages with its own
// SenderChain, a symmetric hash ratchet, and hands the chain's current state
// (its distribution message) to every other member over their 1:1 sessions.
// Members decrypt with a SenderReceiver built from it. The chain advances on
// every message and forgets the previous key, so a member's state at any
// time cannot decrypt earlier messages (forward secrecy per message).
//
// Sender keys give confidentiality against non-members. They do not tell
// members apart: any holder of a distribution message could forge messages
// on that chain, so the sender's identity must be authenticated by the
// transport (gossipsub StrictSign) and bound into the associated data,
// together with the room id and epoch.

const (
	chainIDSize = 8
	// DistributionSize is the size of a distribution message.
	DistributionSize  = 1 + chainIDSize + 4 + keySize
	senderHeaderSize  = 1 + chainIDSize + 4
	senderChainSize   = 1 + chainIDSize + 4 + keySize
	senderSkipSize    = 4 + keySize + 8
	maxSenderRecvSize = 1 + chainIDSize + 4 + keySize + 8 + 2 + MaxSkippedKeys*senderSkipSize
)

// SenderChain is the sending side of a sender-key chain.
// It is not safe for concurrent use.
type SenderChain struct {
	id   [chainIDSize]byte
	ck   [keySize]byte
	iter uint32
}

// NewSenderChain returns a new chain with a random chain key and id.
func NewSenderChain(rand io.Reader) (*SenderChain, error) {
	c := new(SenderChain)
	if _, err := io.ReadFull(rand, c.id[:]); err != nil {
		return nil, fmt.Errorf("e2e: new sender chain: read randomness: %w", err)
	}
	if _, err := io.ReadFull(rand, c.ck[:]); err != nil {
		return nil, fmt.Errorf("e2e: new sender chain: read randomness: %w", err)
	}
	return c, nil
}

// Distribution returns the chain's distribution message: its id, current
// iteration and chain key. It is secret: send it only inside an end-to-end
// session. Its holder can decrypt every message sealed from now on.
func (c *SenderChain) Distribution() []byte {
	b := make([]byte, 0, DistributionSize)
	b = append(b, Version)
	b = append(b, c.id[:]...)
	b = appendU32(b, c.iter)
	return append(b, c.ck[:]...)
}

// Seal encrypts plaintext (at most MaxPlaintextSize bytes) with the next
// message key of the chain and advances the chain. ad is authenticated but
// not encrypted; bind the room id, epoch and sender peer ID into it. The
// caller must persist the chain before publishing the message.
func (c *SenderChain) Seal(plaintext, ad []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("e2e: seal: %w: plaintext of %d bytes, limit %d", ErrTooLarge, len(plaintext), MaxPlaintextSize)
	}
	if c.iter == math.MaxUint32-1 {
		return nil, fmt.Errorf("e2e: seal: %w: start a new chain", ErrChainExhausted)
	}
	out := make([]byte, 0, senderHeaderSize+len(plaintext)+tagSize)
	out = append(out, Version)
	out = append(out, c.id[:]...)
	out = appendU32(out, c.iter)
	seed, next := senderStep(&c.ck)
	out = seal(out, &seed, labelSenderMessage, plaintext, senderAD(out, ad))
	clear(seed[:])
	c.ck = next
	c.iter++
	return out, nil
}

// senderAD is the associated data of a sender message: its header, then the
// caller's ad.
func senderAD(head, ad []byte) []byte {
	b := make([]byte, 0, len(head)+len(ad))
	return append(append(b, head...), ad...)
}

// MarshalBinary encodes the chain: u8 version | id [8] | u32 iteration |
// chain key [32]. Store it as secret data.
func (c *SenderChain) MarshalBinary() ([]byte, error) {
	d := c.Distribution()
	return d, nil
}

// UnmarshalBinary decodes a chain encoded by MarshalBinary.
func (c *SenderChain) UnmarshalBinary(data []byte) error {
	id, iter, ck, err := parseDistribution(data)
	if err != nil {
		return fmt.Errorf("e2e: unmarshal sender chain: %w", err)
	}
	c.id, c.iter, c.ck = id, iter, ck
	return nil
}

func parseDistribution(data []byte) (id [chainIDSize]byte, iter uint32, ck [keySize]byte, err error) {
	if len(data) > DistributionSize {
		return id, 0, ck, fmt.Errorf("%w: %d bytes, want %d", ErrTooLarge, len(data), DistributionSize)
	}
	if len(data) > 0 && data[0] != Version {
		return id, 0, ck, fmt.Errorf("%w %d", ErrUnknownVersion, data[0])
	}
	d := decoder{b: data}
	d.u8()
	copy(id[:], d.take(chainIDSize))
	iter = d.u32()
	d.key(&ck)
	if !d.ok() || iter == math.MaxUint32 {
		return id, 0, ck, fmt.Errorf("%w: bad distribution message", ErrMalformed)
	}
	return id, iter, ck, nil
}

// SenderReceiver is the receiving side of one member's sender-key chain.
// Messages may arrive out of order within MaxSkip; replays are refused with
// ErrReplay. Every failed Open leaves it unchanged.
// It is not safe for concurrent use.
type SenderReceiver struct {
	id      [chainIDSize]byte
	ck      [keySize]byte
	next    uint32 // iteration of ck
	last    int64  // Unix seconds of the latest successful Open
	skipped []senderSkipped
}

type senderSkipped struct {
	n       uint32
	seed    [keySize]byte
	created int64
}

// NewSenderReceiver creates the receiving side of a chain from its
// distribution message.
func NewSenderReceiver(distribution []byte) (*SenderReceiver, error) {
	id, iter, ck, err := parseDistribution(distribution)
	if err != nil {
		return nil, fmt.Errorf("e2e: sender distribution: %w", err)
	}
	return &SenderReceiver{id: id, ck: ck, next: iter}, nil
}

type senderMessage struct {
	id         [chainIDSize]byte
	n          uint32
	head       []byte
	ciphertext []byte
}

func parseSenderMessage(msg []byte) (senderMessage, error) {
	var m senderMessage
	if len(msg) > MaxSenderMessageSize {
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), MaxSenderMessageSize)
	}
	if len(msg) > 0 && msg[0] != Version {
		return m, fmt.Errorf("%w %d", ErrUnknownVersion, msg[0])
	}
	if len(msg) < senderHeaderSize+tagSize {
		return m, fmt.Errorf("%w: truncated sender message", ErrMalformed)
	}
	d := decoder{b: msg[:senderHeaderSize]}
	d.u8()
	copy(m.id[:], d.take(chainIDSize))
	m.n = d.u32()
	m.head = msg[:senderHeaderSize]
	m.ciphertext = msg[senderHeaderSize:]
	return m, nil
}

// Open decrypts a message sealed by the chain, with the same ad the sender
// used; now bounds the age of skipped keys (SkippedKeyMaxAge).
func (r *SenderReceiver) Open(msg, ad []byte, now time.Time) ([]byte, error) {
	pt, err := r.open(msg, ad, now.Unix())
	if err != nil {
		return nil, fmt.Errorf("e2e: open sender message: %w", err)
	}
	return pt, nil
}

func (r *SenderReceiver) open(msg, ad []byte, now int64) ([]byte, error) {
	m, err := parseSenderMessage(msg)
	if err != nil {
		return nil, err
	}
	if m.id != r.id {
		return nil, ErrWrongChain
	}
	fullAD := senderAD(m.head, ad)
	if m.n < r.next {
		for i := range r.skipped {
			k := &r.skipped[i]
			if k.n != m.n || now >= k.created+int64(SkippedKeyMaxAge/time.Second) {
				continue
			}
			pt, err := open(&k.seed, labelSenderMessage, m.ciphertext, fullAD)
			if err != nil {
				return nil, err
			}
			clear(k.seed[:])
			r.skipped = append(r.skipped[:i], r.skipped[i+1:]...)
			r.prune(now)
			return pt, nil
		}
		return nil, fmt.Errorf("%w: message %d was already received", ErrReplay, m.n)
	}
	if m.n-r.next > MaxSkip {
		return nil, fmt.Errorf("%w: message %d is %d ahead (limit %d)", ErrTooManySkipped, m.n, m.n-r.next, MaxSkip)
	}
	ck := r.ck
	var skipped []senderSkipped
	for n := r.next; n < m.n; n++ {
		seed, next := senderStep(&ck)
		ck = next
		skipped = append(skipped, senderSkipped{n: n, seed: seed, created: now})
	}
	seed, next := senderStep(&ck)
	clear(ck[:])
	pt, err := open(&seed, labelSenderMessage, m.ciphertext, fullAD)
	clear(seed[:])
	if err != nil {
		for i := range skipped {
			clear(skipped[i].seed[:])
		}
		return nil, err
	}
	r.ck = next
	r.next = m.n + 1
	r.skipped = append(r.skipped, skipped...)
	r.prune(now)
	return pt, nil
}

func (r *SenderReceiver) prune(now int64) {
	r.last = max(r.last, now)
	keep := r.skipped[:0]
	for _, k := range r.skipped {
		if now < k.created+int64(SkippedKeyMaxAge/time.Second) {
			keep = append(keep, k)
		}
	}
	clear(r.skipped[len(keep):])
	r.skipped = keep
	if extra := len(r.skipped) - MaxSkippedKeys; extra > 0 {
		for i := range extra {
			clear(r.skipped[i].seed[:])
		}
		r.skipped = append(r.skipped[:0], r.skipped[extra:]...)
	}
}

// MarshalBinary encodes the receiver, keys included: store it as secret
// data.
func (r *SenderReceiver) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 1+chainIDSize+4+keySize+8+2+len(r.skipped)*senderSkipSize)
	b = append(b, Version)
	b = append(b, r.id[:]...)
	b = appendU32(b, r.next)
	b = append(b, r.ck[:]...)
	b = appendU64(b, uint64(r.last))
	b = appendU16(b, uint16(len(r.skipped)))
	for _, k := range r.skipped {
		b = appendU32(b, k.n)
		b = append(b, k.seed[:]...)
		b = appendU64(b, uint64(k.created))
	}
	return b, nil
}

// UnmarshalBinary decodes a receiver encoded by MarshalBinary, replacing
// the receiver's contents only on success.
func (r *SenderReceiver) UnmarshalBinary(data []byte) error {
	if len(data) > maxSenderRecvSize {
		return fmt.Errorf("e2e: unmarshal sender receiver: %w: %d bytes", ErrTooLarge, len(data))
	}
	if len(data) > 0 && data[0] != Version {
		return fmt.Errorf("e2e: unmarshal sender receiver: %w %d", ErrUnknownVersion, data[0])
	}
	d := decoder{b: data}
	d.u8()
	var n SenderReceiver
	copy(n.id[:], d.take(chainIDSize))
	n.next = d.u32()
	d.key(&n.ck)
	n.last = int64(d.u64())
	count := int(d.u16())
	if count > MaxSkippedKeys || (!d.failed && len(d.b) != count*senderSkipSize) {
		return fmt.Errorf("e2e: unmarshal sender receiver: %w: wrong length", ErrMalformed)
	}
	for range count {
		var k senderSkipped
		k.n = d.u32()
		d.key(&k.seed)
		k.created = int64(d.u64())
		n.skipped = append(n.skipped, k)
	}
	if !d.ok() {
		return fmt.Errorf("e2e: unmarshal sender receiver: %w: wrong length", ErrMalformed)
	}
	*r = n
	return nil
}
