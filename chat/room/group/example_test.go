package group_test

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/room/group"
)

// Alice creates a room, Bob asks to join with a link (token and join
// secret), Alice's node commits the add, Bob takes the Welcome and they
// exchange a message.
func Example() {
	now := time.Now()
	alice, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	bob, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	bobID, _ := peer.IDFromPrivateKey(bob)
	aliceID, _ := peer.IDFromPrivateKey(alice)

	// Alice creates the room: epoch 1, herself as owner. Her init key
	// served the genesis only.
	aliceKP, alicePriv, _ := group.NewKeyPackage(alice, now)
	alicePriv.EraseInit()
	id, _ := group.NewRoomID()
	genesis, aliceEpoch, _ := group.Create(id, alice, aliceKP, now)
	aliceState := &group.State{Commit: genesis, Epoch: aliceEpoch}

	// Alice makes a link: a token naming her current commit, and a join
	// secret. Bob publishes a join request with a fresh key package of his.
	token, _ := group.NewJoinToken(alice, aliceState.Commit, 5, now.Add(24*time.Hour), "")
	bobKP, bobPriv, _ := group.NewKeyPackage(bob, now)
	req, _ := group.NewJoinRequest(bob, token, token.Secret, bobKP)

	// Alice's node checks the request and commits the add.
	tok, kp, err := group.ParseJoinRequest(bobID, req)
	if err == nil {
		err = tok.Check(aliceState.Commit, bobID, now)
	}
	if err == nil {
		err = group.VerifyJoinProof(token.Secret, bobID, req)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	add, next, _ := group.NewCommit(aliceState.Epoch, alice, group.Proposal{Add: []group.Addition{{KeyPackage: kp, Consent: req.Consent}}}, now)
	if out, err := aliceState.Apply(add, aliceID, []*group.KeyPackagePrivate{alicePriv}); err != nil || out != group.Applied {
		fmt.Println(out, err)
		return
	}
	_ = next // the same epoch Apply derived, from the issuer's side

	// Bob receives the commit on the topic and the chain from the token's
	// commit from a member; the welcome follows it.
	received, _ := group.ParseCommit(add.Marshal())
	if err := group.CheckWelcome(received, []*group.Commit{genesis}, bobID, tok, now); err != nil {
		fmt.Println(err)
		return
	}
	bobEpoch, _ := received.Open(bobID, []*group.KeyPackagePrivate{bobPriv})

	msgID := make([]byte, group.IDSize)
	rand.Read(msgID)
	m, _ := aliceState.Epoch.Seal(aliceID, msgID, uint64(now.UnixMilli())<<16, []byte("welcome, Bob"))
	text, err := bobEpoch.Open(aliceID, m)
	fmt.Println(bobEpoch.Number(), string(text), err)
	// Output: 2 welcome, Bob <nil>
}
