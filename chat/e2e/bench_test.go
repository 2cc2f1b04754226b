package e2e

import "testing"

// BenchmarkRatchetEncryptDecrypt1KiB measures one Encrypt and one Decrypt of
// a 1 KiB message on an established chain (no DH ratchet step).
func BenchmarkRatchetEncryptDecrypt1KiB(b *testing.B) {
	x, y := newParty(b, 1), newParty(b, 2)
	x.initiate(b, y, t0)
	y.recv(b, x, x.send(b, "setup", t0), "setup", t0)
	x.recv(b, y, y.send(b, "reply", t0), "reply", t0)
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
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
