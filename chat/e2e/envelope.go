package e2e

import (
	"crypto/ed25519"
	"fmt"
	"math"
)

// Envelope types, the second byte of an envelope.
const (
	typeMessage = 1 // a ratchet message
	typePrekey  = 2 // a ratchet message preceded by the X3DH header
	// typePrekeyPQ is a ratchet message preceded by the PQXDH header: the
	// X3DH header, the initiator's Ed25519 key, the KEM prekey used and the
	// KEM ciphertext. Peers from before PQXDH never receive one: they serve
	// version 1 bundles only.
	typePrekeyPQ = 3
)

const (
	headerSize       = keySize + 4 + 4
	prekeyHeaderSize = 8 + keySize + sigSize + keySize + 4 + 1 + 4
	// pqHeaderSize is what a type 3 header adds to the X3DH header.
	pqHeaderSize    = ed25519.PublicKeySize + 4 + 1 + KEMCiphertextSize
	minEnvelopeSize = 2 + headerSize + tagSize
)

// header is the Double Ratchet header: the sender's current ratchet public
// key, the length of its previous sending chain and the message number.
type header struct {
	dh    [keySize]byte
	pn, n uint32
}

func (h *header) append(b []byte) []byte {
	b = append(b, h.dh[:]...)
	b = appendU32(b, h.pn)
	return appendU32(b, h.n)
}

// parseHeader decodes an encoded header of exactly headerSize bytes.
func parseHeader(b []byte) (header, error) {
	var h header
	d := decoder{b: b}
	d.key(&h.dh)
	h.pn = d.u32()
	h.n = d.u32()
	if !d.ok() {
		return header{}, fmt.Errorf("%w: ratchet header has %d bytes, want %d", ErrMalformed, len(b), headerSize)
	}
	if h.n == math.MaxUint32 {
		return header{}, fmt.Errorf("%w: message number out of range", ErrMalformed)
	}
	return h, nil
}

// prekeyHeader is the X3DH part of a prekey envelope.
type prekeyHeader struct {
	gen         uint64        // session generation (see Channel)
	identityDH  [keySize]byte // initiator's X25519 identity key
	identitySig [sigSize]byte // its signature by the initiator's Ed25519 key
	ephemeral   [keySize]byte // initiator's ephemeral key (the session's base key)
	spkID       uint32
	hasOTPK     bool
	otpkID      uint32

	// PQXDH (type 3) only.
	pq        bool
	initiator [ed25519.PublicKeySize]byte // initiator's Ed25519 key
	kemID     uint32
	kemKind   byte // kemLastResort or kemOneTime
	kemCT     []byte
}

func (p *prekeyHeader) append(b []byte) []byte {
	b = appendU64(b, p.gen)
	b = append(b, p.identityDH[:]...)
	b = append(b, p.identitySig[:]...)
	b = append(b, p.ephemeral[:]...)
	b = appendU32(b, p.spkID)
	flag := byte(0)
	if p.hasOTPK {
		flag = 1
	}
	b = append(b, flag)
	b = appendU32(b, p.otpkID)
	if p.pq {
		b = append(b, p.initiator[:]...)
		b = appendU32(b, p.kemID)
		b = append(b, p.kemKind)
		b = append(b, p.kemCT...)
	}
	return b
}

// envelope is a parsed envelope. head is every byte before the ciphertext;
// it is authenticated as part of the associated data.
type envelope struct {
	typ        byte
	pre        prekeyHeader
	hdr        header
	head       []byte
	ciphertext []byte
}

// parseEnvelope decodes an envelope:
//
//	u8 version | u8 type | [prekey header, type 2] | ratchet header | ciphertext
func parseEnvelope(data []byte) (envelope, error) {
	var e envelope
	if len(data) > MaxEnvelopeSize {
		return e, fmt.Errorf("%w: envelope of %d bytes, limit %d", ErrTooLarge, len(data), MaxEnvelopeSize)
	}
	if len(data) > 0 && data[0] != Version {
		return e, fmt.Errorf("%w %d: the sender runs an incompatible version", ErrUnknownVersion, data[0])
	}
	if len(data) < 2 {
		return e, fmt.Errorf("%w: truncated envelope", ErrMalformed)
	}
	e.typ = data[1]
	off := 2
	switch e.typ {
	case typeMessage:
	case typePrekey, typePrekeyPQ:
		if len(data) < off+prekeyHeaderSize {
			return e, fmt.Errorf("%w: truncated prekey header", ErrMalformed)
		}
		d := decoder{b: data[off : off+prekeyHeaderSize]}
		e.pre.gen = d.u64()
		d.key(&e.pre.identityDH)
		copy(e.pre.identitySig[:], d.take(sigSize))
		d.key(&e.pre.ephemeral)
		e.pre.spkID = d.u32()
		switch d.u8() {
		case 0:
		case 1:
			e.pre.hasOTPK = true
		default:
			return e, fmt.Errorf("%w: bad one-time prekey flag", ErrMalformed)
		}
		e.pre.otpkID = d.u32()
		if !e.pre.hasOTPK && e.pre.otpkID != 0 {
			return e, fmt.Errorf("%w: one-time prekey id without flag", ErrMalformed)
		}
		off += prekeyHeaderSize
		if e.typ == typePrekeyPQ {
			if len(data) < off+pqHeaderSize {
				return e, fmt.Errorf("%w: truncated PQXDH header", ErrMalformed)
			}
			d := decoder{b: data[off : off+pqHeaderSize]}
			e.pre.pq = true
			copy(e.pre.initiator[:], d.take(ed25519.PublicKeySize))
			e.pre.kemID = d.u32()
			e.pre.kemKind = d.u8()
			if e.pre.kemKind != kemLastResort && e.pre.kemKind != kemOneTime {
				return e, fmt.Errorf("%w: bad KEM prekey kind %d", ErrMalformed, e.pre.kemKind)
			}
			e.pre.kemCT = d.take(KEMCiphertextSize)
			off += pqHeaderSize
		}
	default:
		return e, fmt.Errorf("%w: unknown envelope type %d", ErrMalformed, e.typ)
	}
	if len(data) < off+headerSize+tagSize {
		return e, fmt.Errorf("%w: truncated envelope", ErrMalformed)
	}
	h, err := parseHeader(data[off : off+headerSize])
	if err != nil {
		return e, err
	}
	e.hdr = h
	off += headerSize
	e.head = data[:off]
	e.ciphertext = data[off:]
	return e, nil
}

// IsPrekeyEnvelope reports whether an envelope carries an X3DH header, that
// is, whether decrypting it may consume a one-time prekey from the KeyStore
// (so the KeyStore must be saved with the result).
func IsPrekeyEnvelope(envelope []byte) bool {
	return len(envelope) >= 2 && envelope[0] == Version && (envelope[1] == typePrekey || envelope[1] == typePrekeyPQ)
}

// PrekeyInitiator returns the Ed25519 key that a PQXDH prekey envelope
// (type 3) names as its initiator, for a receiver that does not know the
// sender yet (a first message from a mailbox). It is a claim, not a
// proof: Decrypt with that key as remote authenticates it (the identity
// DH key must be signed by it and the X3DH and AEAD must succeed).
func PrekeyInitiator(envelope []byte) (ed25519.PublicKey, error) {
	e, err := parseEnvelope(envelope)
	if err != nil {
		return nil, fmt.Errorf("e2e: prekey initiator: %w", err)
	}
	if e.typ != typePrekeyPQ {
		return nil, fmt.Errorf("e2e: prekey initiator: %w: not a PQXDH prekey message", ErrMalformed)
	}
	return ed25519.PublicKey(e.pre.initiator[:]), nil
}
