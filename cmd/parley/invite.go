package main

import (
	"fmt"

	"github.com/parley-im/parley/peer/apitype"
)

// printAddSession tells, after `parley add`, whether a first message can
// leave at once: a contact link carries a PQXDH bundle, from which the
// node starts a session even while the inviter is offline (the message
// then waits in the inviter's mailboxes). A bare peer ID, or a link whose
// prekeys are too old, gives no session until the contact is online.
func printAddSession(e *env, ct apitype.Contact) {
	switch {
	case ct.Session && ct.PostQuantum:
		fmt.Fprintln(e.stdout, "post-quantum session (PQXDH) ready: you can write now, even while they are offline")
	case ct.Session:
		fmt.Fprintln(e.stdout, "session ready (X3DH, not post-quantum)")
	default:
		fmt.Fprintln(e.stdout, "no session yet: the first message waits until they are online")
	}
}

// printSessionKind says, under a safety number, what kind of session the
// contact has.
func printSessionKind(e *env, sn apitype.SafetyNumber) {
	switch {
	case sn.PostQuantum:
		fmt.Fprintln(e.stdout, "session: post-quantum (PQXDH: X25519 + ML-KEM-768)")
	case sn.Session:
		fmt.Fprintln(e.stdout, "session: X3DH (not post-quantum: the contact runs an older parley)")
	default:
		fmt.Fprintln(e.stdout, "session: none yet")
	}
}
