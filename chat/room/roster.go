package room

import (
	"errors"
	"fmt"
	"sort"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// ErrBadRoster: a roster whose signature, issuer or epoch is not acceptable.
var ErrBadRoster = errors.New("invalid room roster")

// openRoster decodes a serialized SignedRoster, verifies the issuer's
// Ed25519 signature against the issuer's peer ID, and returns the issuer and
// the decoded roster. Whether the issuer may issue it is for the caller.
func openRoster(signed []byte) (peer.ID, *wirepb.Roster, error) {
	sr, err := wire.DecodeSignedRoster(signed)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrBadRoster, err)
	}
	// Read the issuer before validating the rest, to know whose key to use.
	var unverified wirepb.Roster
	if err := proto.Unmarshal(sr.Roster, &unverified); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadRoster, err)
	}
	issuer, err := peer.IDFromBytes(unverified.Issuer)
	if err != nil {
		return "", nil, fmt.Errorf("%w: issuer: %v", ErrBadRoster, err)
	}
	pub, err := issuer.ExtractPublicKey()
	if err != nil {
		return "", nil, fmt.Errorf("%w: issuer key: %v", ErrBadRoster, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return "", nil, fmt.Errorf("%w: issuer key is not Ed25519", ErrBadRoster)
	}
	ok, err := pub.Verify(wire.RosterSigningInput(sr.Roster), sr.Signature)
	if err != nil || !ok {
		return "", nil, fmt.Errorf("%w: bad signature by %s", ErrBadRoster, issuer)
	}
	roster, err := wire.DecodeRoster(sr.Roster)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrBadRoster, err)
	}
	return issuer, roster, nil
}

// signRoster serializes r, signs it with key and returns the serialized
// SignedRoster.
func signRoster(key crypto.PrivKey, r *wirepb.Roster) ([]byte, error) {
	sort.Slice(r.Members, func(i, j int) bool { return string(r.Members[i].PeerId) < string(r.Members[j].PeerId) })
	if err := wire.ValidateRoster(r); err != nil {
		return nil, err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(wire.RosterSigningInput(b))
	if err != nil {
		return nil, fmt.Errorf("sign roster: %w", err)
	}
	return proto.Marshal(&wirepb.SignedRoster{Roster: b, Signature: sig})
}

// isAdmin reports whether role may change the roster.
func isAdmin(role wirepb.Role) bool {
	return role == wirepb.Role_ROLE_ADMIN || role == wirepb.Role_ROLE_OWNER
}

// checkSuccessor checks that next may follow prev: a later epoch, issued by
// an admin or the owner of prev, who also keeps the owner (only the owner
// may remove or demote the owner).
func checkSuccessor(prev *epoch, issuer peer.ID, next *wirepb.Roster) error {
	if next.Epoch <= prev.n {
		return fmt.Errorf("%w: epoch %d is not after %d", ErrBadRoster, next.Epoch, prev.n)
	}
	if !prev.admin(issuer) {
		return fmt.Errorf("%w: issuer %s is not an admin of epoch %d", ErrBadRoster, issuer, prev.n)
	}
	if prev.role(issuer) != wirepb.Role_ROLE_OWNER {
		for p, role := range prev.roles {
			if role != wirepb.Role_ROLE_OWNER {
				continue
			}
			kept := false
			for _, m := range next.Members {
				if peer.ID(m.PeerId) == p && m.Role == wirepb.Role_ROLE_OWNER {
					kept = true
				}
			}
			if !kept {
				return fmt.Errorf("%w: an admin may not remove the owner", ErrBadRoster)
			}
		}
	}
	return nil
}
