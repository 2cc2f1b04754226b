package group

import "errors"

// Sentinel errors. Every error this package returns wraps one of them, so
// callers test with errors.Is.
var (
	// ErrInvalid: the input does not decode, breaks a size limit or a field
	// rule. Nothing was changed.
	ErrInvalid = errors.New("group: invalid input")
	// ErrBadSignature: a signature does not verify against the claimed
	// signer, or the signer's peer ID holds no Ed25519 key.
	ErrBadSignature = errors.New("group: bad signature")
	// ErrNotSuccessor: the commit does not follow the commit it was checked
	// against (room, epoch number or parent hash).
	ErrNotSuccessor = errors.New("group: not the successor commit")
	// ErrUnknownParent: the commit is for a later epoch, or names a parent
	// we do not hold; fetch the missing commits.
	ErrUnknownParent = errors.New("group: unknown parent commit")
	// ErrFork: a different commit for an epoch we hold, whose parent we no
	// longer hold: the room forked deeper than one epoch.
	ErrFork = errors.New("group: room forked")
	// ErrNotAdmin: the issuer or signer lacks the role the change needs.
	ErrNotAdmin = errors.New("group: not an admin")
	// ErrBadChanges: the listed changes do not match the roster difference.
	ErrBadChanges = errors.New("group: changes do not match the roster")
	// ErrNotMember: the peer is not in the epoch's roster.
	ErrNotMember = errors.New("group: not a member")
	// ErrNoSecret: the commit seals nothing we can open (we are not in its
	// roster, or none of our key packages matches).
	ErrNoSecret = errors.New("group: no sealed secret for us")
	// ErrWrongEpoch: a message or proof of another epoch than this one.
	ErrWrongEpoch = errors.New("group: wrong epoch")
	// ErrNewerEpoch (always with ErrWrongEpoch): a message claims an epoch
	// after ours. The claim is unauthenticated (its MAC is under keys we
	// lack): fetch commits from members, rate-limited, and stop sending only
	// once a fetched chain applies.
	ErrNewerEpoch = errors.New("group: claims a newer epoch")
	// ErrBadProof: a join request's proof of the link's join secret fails.
	ErrBadProof = errors.New("group: bad join proof")
	// ErrBadMAC: the membership MAC, sync proof or confirmation tag does not
	// verify.
	ErrBadMAC = errors.New("group: bad membership MAC")
	// ErrDecrypt: authenticated decryption failed.
	ErrDecrypt = errors.New("group: decryption failed")
	// ErrKeyUsed: the message key of that generation was used already or
	// dropped (a replay, or older than the skipped-key window).
	ErrKeyUsed = errors.New("group: message key used or expired")
	// ErrTooFarAhead: the generation is more than MaxSkip past the chain.
	ErrTooFarAhead = errors.New("group: generation too far ahead")
	// ErrExpired: the join token has expired.
	ErrExpired = errors.New("group: token expired")
	// ErrWrongRoom: the token, commit or message is for another room.
	ErrWrongRoom = errors.New("group: wrong room")
	// ErrNotInvitee: the token names another invitee.
	ErrNotInvitee = errors.New("group: token is for another peer")
)
