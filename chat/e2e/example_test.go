package e2e_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/parley-im/parley/chat/e2e"
)

// Alice starts a session with Bob from his bundle; Bob answers.
// In Parley each step's state (KeyStore, Channel) is saved in the same
// database transaction as the message.
func Example() {
	now := time.Now()
	_, alice, _ := ed25519.GenerateKey(rand.Reader)
	bobPub, bob, _ := ed25519.GenerateKey(rand.Reader)
	aliceKeys, _ := e2e.NewKeyStore(alice, rand.Reader, now)
	bobKeys, _ := e2e.NewKeyStore(bob, rand.Reader, now)

	// Bob serves a bundle on /parley/prekeys/1 (and saves bobKeys).
	bundle, _ := bobKeys.Bundle(bob, now)
	wire, _ := bundle.MarshalBinary()

	// Alice verifies it against Bob's peer ID key and starts the session.
	var got e2e.Bundle
	if err := got.UnmarshalBinary(wire); err != nil {
		panic(err)
	}
	var toBob e2e.Channel
	if err := toBob.Initiate(alice, aliceKeys, bobPub, got, rand.Reader, now); err != nil {
		panic(err)
	}
	env, _ := toBob.Encrypt(alice, aliceKeys, []byte("hi bob"), rand.Reader, now)

	// Bob decrypts the prekey message; this consumes a one-time prekey.
	var toAlice e2e.Channel
	pt, err := toAlice.Decrypt(bob, bobKeys, alice.Public().(ed25519.PublicKey), env, rand.Reader, now)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(pt))

	reply, _ := toAlice.Encrypt(bob, bobKeys, []byte("hi alice"), rand.Reader, now)
	pt, _ = toBob.Decrypt(alice, aliceKeys, bobPub, reply, rand.Reader, now)
	fmt.Println(string(pt))
	// Output:
	// hi bob
	// hi alice
}
