package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"
)

// fuzzState is a conversation whose encodings seed the fuzz targets.
var fuzzState = sync.OnceValue(func() (s struct {
	a, b           *party
	envelopes      [][]byte
	bobChannel     []byte
	bobKeys        []byte
	bundle         []byte
	pqBundle       []byte
	linkBundle     []byte
	pqChannel      []byte
	distribution   []byte
	senderMsgs     [][]byte
	senderReceiver []byte
}) {
	t := &testing.T{}
	a, b := newParty(t, 1), newParty(t, 2)
	a.initiate(t, b, t0)
	pre := a.send(t, "prekey", t0)
	b.recv(t, a, pre, "prekey", t0)
	reply := b.send(t, "reply", t0)
	a.recv(t, b, reply, "reply", t0)
	skipped := a.send(t, "skipped", t0)
	b.recv(t, a, a.send(t, "normal", t0), "normal", t0)
	s.a, s.b = a, b
	s.envelopes = [][]byte{pre, reply, skipped, a.send(t, "fresh", t0)}
	// A PQXDH prekey message of a second session, which Bob has not seen.
	pqBundle, _ := b.ks.BundlePQ(b.id, t0)
	var a2 Channel
	if err := a2.Initiate(a.id, a.ks, b.pub, pqBundle, detRand(7), t0.Add(time.Second)); err != nil {
		panic(err)
	}
	pqEnv, _ := a2.Encrypt(a.id, a.ks, []byte("pq"), detRand(7), t0)
	s.envelopes = append(s.envelopes, pqEnv)
	s.bobChannel, _ = b.ch.MarshalBinary()
	s.bobKeys, _ = b.ks.MarshalBinary()
	bundle, _ := b.ks.Bundle(b.id, t0)
	s.bundle, _ = bundle.MarshalBinary()
	s.pqBundle, _ = pqBundle.MarshalBinary()
	linkBundle, _ := b.ks.LinkBundle(b.id, t0)
	s.linkBundle, _ = linkBundle.MarshalBinary()
	s.pqChannel, _ = a2.MarshalBinary()
	c, _ := NewSenderChain(detRand(5))
	s.distribution = c.Distribution()
	r, _ := NewSenderReceiver(s.distribution)
	m0, _ := c.Seal([]byte("zero"), []byte("ad"))
	m1, _ := c.Seal([]byte("one"), []byte("ad"))
	r.Open(m1, []byte("ad"), t0)
	s.senderMsgs = [][]byte{m0, m1}
	s.senderReceiver, _ = r.MarshalBinary()
	return s
})

// addTranscript adds the transcript's envelopes as seeds.
func addTranscript(f *testing.F) {
	b, err := os.ReadFile("testdata/transcript.json")
	if err != nil {
		return
	}
	var steps []transcriptStep
	if json.Unmarshal(b, &steps) != nil {
		return
	}
	for _, s := range steps {
		if e, err := hex.DecodeString(s.Envelope); err == nil {
			f.Add(e)
		}
	}
}

// FuzzEnvelope decrypts arbitrary envelopes on a real channel: no panic,
// and a failure leaves the channel and key store unchanged.
func FuzzEnvelope(f *testing.F) {
	s := fuzzState()
	for _, e := range s.envelopes {
		f.Add(e)
	}
	addTranscript(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		parseEnvelope(data)
		var ch Channel
		if err := ch.UnmarshalBinary(s.bobChannel); err != nil {
			t.Fatal(err)
		}
		ks := new(KeyStore)
		if err := ks.UnmarshalBinary(s.bobKeys); err != nil {
			t.Fatal(err)
		}
		p := &party{id: s.b.id, pub: s.b.pub, ks: ks, ch: ch, rnd: detRand(9)}
		snap := p.snapshot(t)
		if _, err := p.ch.Decrypt(p.id, p.ks, s.a.pub, data, p.rnd, t0); err != nil {
			if !bytes.Equal(snap, p.snapshot(t)) {
				t.Fatal("failed decrypt changed the state")
			}
		}
	})
}

func FuzzHeader(f *testing.F) {
	for _, e := range fuzzState().envelopes {
		if env, err := parseEnvelope(e); err == nil {
			f.Add(env.head[len(env.head)-headerSize:])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHeader(data)
		if err == nil && !bytes.Equal(h.append(nil), data) {
			t.Fatal("header does not round-trip")
		}
	})
}

func FuzzBundle(f *testing.F) {
	b := fuzzState().bundle
	f.Add(b)
	f.Add(b[:bundleBaseSize])
	f.Add(fuzzState().pqBundle)
	f.Add(fuzzState().linkBundle)
	f.Fuzz(func(t *testing.T, data []byte) {
		var x Bundle
		if x.UnmarshalBinary(data) != nil {
			return
		}
		x.Verify(fuzzState().b.pub)
		enc, err := x.MarshalBinary()
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatal("bundle does not round-trip")
		}
	})
}

func FuzzKeyStore(f *testing.F) {
	f.Add(fuzzState().bobKeys)
	f.Fuzz(func(t *testing.T, data []byte) {
		var ks KeyStore
		if ks.UnmarshalBinary(data) != nil {
			return
		}
		enc, err := ks.MarshalBinary()
		if err != nil || (data[0] == keyStoreVersion && !bytes.Equal(enc, data)) {
			t.Fatal("key store does not round-trip")
		}
		s := fuzzState()
		ks.Bundle(s.b.id, t0)
		ks.BundlePQ(s.b.id, t0)
		ks.LinkBundle(s.b.id, t0)
		ks.Maintain(s.b.id, detRand(1), t0)
	})
}

func FuzzChannel(f *testing.F) {
	s := fuzzState()
	f.Add(s.bobChannel)
	a, _ := s.a.ch.MarshalBinary()
	f.Add(a)
	f.Add(s.pqChannel)
	f.Fuzz(func(t *testing.T, data []byte) {
		var ch Channel
		if ch.UnmarshalBinary(data) != nil {
			return
		}
		enc, err := ch.MarshalBinary()
		if err != nil || (data[0] == channelStateVersion && !bytes.Equal(enc, data)) {
			t.Fatal("channel does not round-trip")
		}
		ch.Encrypt(s.b.id, s.b.ks, []byte("x"), detRand(1), t0)
		for _, e := range s.envelopes {
			ch.Decrypt(s.b.id, nil, s.a.pub, e, detRand(1), t0)
		}
		ch.Reset()
	})
}

func FuzzSenderDistribution(f *testing.F) {
	f.Add(fuzzState().distribution)
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := NewSenderReceiver(data); err == nil {
			r.Open(fuzzState().senderMsgs[0], []byte("ad"), t0)
		}
		var c SenderChain
		if c.UnmarshalBinary(data) == nil {
			if enc, _ := c.MarshalBinary(); !bytes.Equal(enc, data) {
				t.Fatal("sender chain does not round-trip")
			}
		}
	})
}

func FuzzSenderMessage(f *testing.F) {
	s := fuzzState()
	for _, m := range s.senderMsgs {
		f.Add(m, s.senderReceiver)
	}
	f.Fuzz(func(t *testing.T, msg, state []byte) {
		var r SenderReceiver
		if r.UnmarshalBinary(state) != nil {
			return
		}
		enc, _ := r.MarshalBinary()
		if !bytes.Equal(enc, state) {
			t.Fatal("sender receiver does not round-trip")
		}
		if _, err := r.Open(msg, []byte("ad"), t0); err != nil {
			if after, _ := r.MarshalBinary(); !bytes.Equal(after, state) {
				t.Fatal("failed Open changed the receiver")
			}
		}
	})
}
