// Package group is the state machine of a private room, version 2: MLS's
// group semantics (RFC 9420) without its ratchet tree. It is pure: no
// network, no storage; chat/room runs it on gossipsub and stores its state.
// docs/PROTOCOL.md ("Rooms") is the normative specification; this comment
// states the invariants the code keeps.
//
// # Objects
//
//   - A KeyPackage is a member's two HPKE public keys (DHKEM(X25519,
//     HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305), signed by its peer
//     identity (Ed25519): an encryption key, to which commits seal the
//     commit secret while the member stays, and a one-time init key, to
//     which the commit adding the member seals its joiner secret (MLS's
//     Welcome). KeyPackagePrivate holds both private halves; Commit.Open
//     erases the init key once it took the Welcome.
//   - A Commit starts epoch n of a room: the whole roster (peer, role, key
//     package, and for an added member its signed consent), the changes
//     since epoch n-1 (a leave carries the member's signed proposal), the
//     hash of commit n-1, one sealed entry per member, and a confirmation
//     tag. The issuer signs the body, the hash of the sealed list and the
//     tag, so no one but the issuer can hand a member another secret, and
//     the issuer cannot hand two members different ones that both accept.
//   - An Epoch is what a member derives from a commit it can follow: the
//     roster, the membership, rendezvous and sync keys, one hash ratchet per
//     member, and the init secret the next epoch derives from (RFC 9420 §8:
//     epoch n needs init_secret[n-1] and commit n's commit secret). The
//     commit, joiner and epoch secrets are erased once derived, every
//     message key once used, and an init secret once the epoch after the
//     next is applied: stored state and key package private keys together
//     re-derive at most the current and previous epoch.
//   - A JoinToken is an admin's signed, expiring permission to ask to join,
//     naming the issuer's commit at issue time; its join secret travels in
//     the link, and a JoinRequest proves knowledge of it bound to the
//     joiner and its key package.
//
// # Invariants
//
//  1. Authority first. Commit n+1 is valid only if its issuer is an admin
//     or the owner in epoch n, and that is checked before anything costly
//     (key packages are verified only then). Removing, demoting or making
//     leave an admin or owner takes the owner (or the subject itself
//     leaving); granting ownership takes the owner; every roster keeps at
//     least one owner. The genesis commit (epoch 1, zero parent) holds only
//     its issuer, as owner.
//  2. Chain. Commit n+1 names the hash of commit n as parent; a member
//     applies only the successor of a commit it holds. Its changes account
//     exactly for the difference between the two rosters, each add carries
//     the joiner's consent to this room and each leave the leaver's
//     signature, so the history every member shows is what they signed.
//  3. Secrecy of membership. Only members of epoch n can follow it: a
//     removed member gets no sealed entry, and its init_secret[n-1] alone
//     derives nothing.
//  4. Agreement. Every member that accepts a commit holds the same keys
//     (confirmation tag). Two valid commits with the same parent resolve
//     everywhere alike (Wins: ousting, role, a verified child, then a
//     tie-break the issuer cannot regrind); two by one issuer are an
//     equivocation, reported. A member rewinds at most one epoch (State);
//     a deeper conflict is reported (ErrFork), never silently merged.
//  5. Authorship. Every message MAC, AEAD associated data and sync proof
//     covers the author's peer ID: copying another member's message under
//     one's own name fails every check.
//  6. Bounds. Every decoder has a size limit and refuses unknown fields; at
//     most 1000 members, 1000 skipped keys per author, and a generation at
//     most 1000 ahead.
package group
