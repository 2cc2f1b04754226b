package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"slices"
	"time"
)

// Authenticate reports whether Decrypt would accept envelope from remote
// at now, without changing c or ks: it decrypts a copy of both and throws
// the copies away. A receiver that learns who a message claims to come from
// only from the message itself (a first message deposited under a contact
// link's secret names its initiator in its PQXDH header) calls it before
// anything is recorded about that sender, so that a forged message naming
// some peer creates no contact, request, session or consumed prekey.
//
// It costs one more decryption (for a prekey message: one ML-KEM-768
// decapsulation, up to four X25519 and one Ed25519 verification). The
// error is the one Decrypt would return.
func (c *Channel) Authenticate(local ed25519.PrivateKey, ks *KeyStore, remote ed25519.PublicKey, envelope []byte, now time.Time) error {
	cc, err := c.clone()
	if err != nil {
		return fmt.Errorf("e2e: authenticate: %w", err)
	}
	var kc *KeyStore
	if ks != nil {
		kc = ks.clone()
	}
	pt, err := cc.decrypt(local, kc, remote, envelope, rand.Reader, now)
	clear(pt)
	cc.zero()
	if kc != nil {
		kc.zeroCopy()
	}
	if err != nil {
		return fmt.Errorf("e2e: authenticate: %w", err)
	}
	return nil
}

// clone is a deep copy of c, through its encoding.
func (c *Channel) clone() (*Channel, error) {
	b, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(b)
	return unmarshalChannel(b)
}

// zero clears the secrets of c's sessions and skipped keys.
func (c *Channel) zero() {
	if c.cur != nil {
		c.cur.zero()
	}
	for _, s := range c.old {
		s.zero()
	}
	zeroSkipped(c.skipped)
}

// clone is a copy of ks whose prekey lists are its own: consuming a
// prekey of the copy leaves ks as it was.
func (ks *KeyStore) clone() *KeyStore {
	n := *ks
	n.spks = slices.Clone(ks.spks)
	n.otpks = slices.Clone(ks.otpks)
	n.lrks = slices.Clone(ks.lrks)
	n.okps = slices.Clone(ks.okps)
	n.spent = slices.Clone(ks.spent)
	return &n
}

// zeroCopy clears the private keys that a clone copied; the original
// keeps its own. (Cached ML-KEM decapsulation keys are shared, not copied.)
func (ks *KeyStore) zeroCopy() {
	ks.idDH.zero()
	for i := range ks.spks {
		ks.spks[i].kp.zero()
	}
	for i := range ks.otpks {
		ks.otpks[i].kp.zero()
	}
	for i := range ks.lrks {
		clear(ks.lrks[i].seed[:])
	}
	for i := range ks.okps {
		clear(ks.okps[i].seed[:])
	}
}
