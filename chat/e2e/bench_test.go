package e2e

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkRatchetEncryptDecrypt1KiB measures one Encrypt and one Decrypt of
// a 1 KiB message on an established chain (no DH ratchet step). Besides the
// time, it reports the process's CPU time per operation (garbage collection
// included), which a busy machine inflates far less than ns/op.
func BenchmarkRatchetEncryptDecrypt1KiB(b *testing.B) {
	x, y := newParty(b, 1), newParty(b, 2)
	x.initiate(b, y, t0)
	y.recv(b, x, x.send(b, "setup", t0), "setup", t0)
	x.recv(b, y, y.send(b, "reply", t0), "reply", t0)
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		env, err := x.ch.Encrypt(x.id, x.ks, msg, x.rnd, t0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := y.ch.Decrypt(y.id, y.ks, x.pub, env, y.rnd, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU starts counting the process's CPU time; the function it
// returns reports it per operation as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	cpu0, cpuOK := processCPU()
	return func() {
		if cpu1, ok := processCPU(); cpuOK && ok && b.N > 0 {
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func BenchmarkSenderSealOpen1KiB(b *testing.B) {
	c, _ := NewSenderChain(detRand(1))
	r, _ := NewSenderReceiver(c.Distribution())
	msg := make([]byte, 1024)
	ad := []byte("room|epoch|sender")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := c.Seal(msg, ad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Open(m, ad, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// setupOnce is one session setup, from the responder handing out a bundle
// to the responder decrypting the first message: the responder issues and
// encodes a bundle and encodes its key store (what /parley/prekeys/1 does
// before answering), the initiator decodes and verifies it, initiates and
// encrypts, and a fresh responder channel decrypts. Maintain refills the
// one-time pools as a node does, so their cost is amortised in.
func setupOnce(b *testing.B, x, y *party, pq bool) {
	issue := y.ks.Bundle
	if pq {
		issue = y.ks.BundlePQ
	}
	bundle, err := issue(y.id, t0)
	if err != nil {
		b.Fatal(err)
	}
	wireBundle, _ := bundle.MarshalBinary()
	if _, err := y.ks.MarshalBinary(); err != nil {
		b.Fatal(err)
	}
	var got Bundle
	if err := got.UnmarshalBinary(wireBundle); err != nil {
		b.Fatal(err)
	}
	var xc, yc Channel
	if err := xc.Initiate(x.id, x.ks, y.pub, got, x.rnd, t0); err != nil {
		b.Fatal(err)
	}
	env, err := xc.Encrypt(x.id, x.ks, []byte("first"), x.rnd, t0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := yc.Decrypt(y.id, y.ks, x.pub, env, y.rnd, t0); err != nil {
		b.Fatal(err)
	}
	if _, err := y.ks.Maintain(y.id, y.rnd, t0); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSessionSetup measures session setup (bundle issue to first
// decrypt) with X3DH and with PQXDH.
func BenchmarkSessionSetup(b *testing.B) {
	for _, pq := range []bool{false, true} {
		name := "X3DH"
		if pq {
			name = "PQXDH"
		}
		b.Run(name, func(b *testing.B) {
			x, y := newParty(b, 1), newParty(b, 2)
			b.ReportAllocs()
			for b.Loop() {
				setupOnce(b, x, y, pq)
			}
		})
	}
}

// BenchmarkSessionSetupRatio runs both setups alternately in one loop and
// reports their cost and the PQXDH/X3DH ratio, so the ratio comes from one
// run on one machine state.
func BenchmarkSessionSetupRatio(b *testing.B) {
	x, y := newParty(b, 1), newParty(b, 2)
	var classic, pq time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		setupOnce(b, x, y, false)
		mid := time.Now()
		setupOnce(b, x, y, true)
		classic += mid.Sub(start)
		pq += time.Since(mid)
		n++
	}
	b.ReportMetric(float64(classic.Nanoseconds())/float64(n), "x3dh-ns/setup")
	b.ReportMetric(float64(pq.Nanoseconds())/float64(n), "pqxdh-ns/setup")
	b.ReportMetric(float64(pq)/float64(classic), "pqxdh/x3dh")
}

// BenchmarkRatchetFloor1KiB measures, per operation of
// BenchmarkRatchetEncryptDecrypt1KiB, what the primitives alone cost: a
// ChaCha20-Poly1305 seal and open of 1 KiB with fresh keys (AEAD), the
// chain step and message-key expansion of both sides written plainly with
// crypto/hmac and crypto/hkdf (StdlibKDF), and as this package does them
// (KDF), the KDF and AEAD of both sides in one loop as Encrypt and
// Decrypt call them, without the Channel (KDF+AEAD), and the 30 SHA-256
// compressions that HMAC needs at the least for
// both sides' KDF, its pads precomputed (SHA256: 6 for the chain step, 2
// to extract, 7 to expand; KDF does 19 a side). KDF+AEAD is the floor of
// an encrypt and decrypt pair; run them with the ratchet benchmark so all
// come from one machine state.
func BenchmarkRatchetFloor1KiB(b *testing.B) {
	msg := make([]byte, 1024)
	ad := make([]byte, 1+2*ed25519.PublicKeySize+2+headerSize)
	var key [keySize]byte
	var nonce [nonceSize]byte
	b.Run("AEAD", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			enc, _ := chacha20poly1305.New(key[:])
			ct := enc.Seal(make([]byte, 0, 2+headerSize+len(msg)+tagSize), nonce[:], msg, ad)
			dec, _ := chacha20poly1305.New(key[:])
			if _, err := dec.Open(nil, nonce[:], ct, ad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("StdlibKDF", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		var ck [keySize]byte
		for b.Loop() {
			for range 2 {
				h := hmac.New(sha256.New, ck[:])
				h.Write([]byte{1})
				mk := h.Sum(nil)
				h.Reset()
				h.Write([]byte{2})
				h.Sum(ck[:0])
				if _, err := hkdf.Key(sha256.New, mk, nil, labelMessageKey, keySize+nonceSize); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("KDF+AEAD", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		defer reportCPU(b)()
		var cks, ckr [keySize]byte
		for b.Loop() {
			k := getKDF()
			mk, next := kdfCKWith(k, &cks)
			ct := sealWith(k, make([]byte, 0, 2+headerSize+len(msg)+tagSize), &mk, labelMessageKey, msg, ad)
			k.put()
			cks = next
			k = getKDF()
			mk, next = kdfCKWith(k, &ckr)
			_, err := openWith(k, &mk, labelMessageKey, ct, ad)
			k.put()
			if err != nil {
				b.Fatal(err)
			}
			ckr = next
		}
	})
	b.Run("SHA256", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		d := sha256.New()
		var block [sha256.BlockSize]byte
		for b.Loop() {
			for range 30 {
				d.Write(block[:])
			}
		}
	})
	b.Run("KDF", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		var ck [keySize]byte
		for b.Loop() {
			for range 2 {
				k := getKDF()
				mk, next := kdfCKWith(k, &ck)
				k.ak = expandWith(k, &mk, labelMessageKey)
				k.put()
				ck = next
			}
		}
	})
}
