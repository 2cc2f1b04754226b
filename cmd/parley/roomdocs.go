package main

// Help for the room verbs, kept apart from room.go so that the verbs and
// their documentation can change independently.
func init() {
	document("rooms", command{
		group: "Rooms",
		long: `Lists the rooms you are in: private (end-to-end encrypted, with a roster) or
public (clear text, joined by name), your role, members, connected peers,
the current key epoch and the room's state:

  joined    you are a member
  waiting   you asked to join (by link or by accepting an invitation) and
            an admin has not admitted you yet: it happens when one is online
  removed   an admin removed you; the history stays readable, nothing new
            reaches you
  left      you left the room

With --invites, lists the invitations your contacts sent you: nothing
happens until you accept one (` + "`parley room accept ID`" + `) or decline it.
Invitations from peers who are not your contacts are dropped.`,
		examples: []string{"parley rooms", "parley rooms --invites", "parley rooms --json"},
	})
	document("room", command{
		group:   "Rooms",
		summary: "manage rooms: create, join, invite, links, accept, promote, kick, leave, members",
		long: `Rooms are group conversations over gossipsub. A private room's messages are
end-to-end encrypted under a roster signed by an admin, and every removal
starts a new key epoch the removed member never gets. A public room is
readable by anyone who knows its name. Joins, kicks, leaves and promotions
appear in the room's history for every member.

Admins add members in two ways. An invitation goes to a contact, who
accepts or declines it; invitations from peers who are not your contacts
are dropped. A join link admits up to --uses joins (default 1) until it
expires (--expires, default 7 days) or is revoked with ` + "`room revoke`" + `;
` + "`room links`" + ` lists them. Treat a link like a password: whoever holds it
can ask to join.

` + "`room join LINK`" + ` prints "joined #NAME" once you are in, or "waiting for the
admin (...)" when the join is sent and no admin has admitted it yet: both
exit 0, and the room turns up in ` + "`parley rooms`" + ` when it is admitted.

` + roomUsage,
		examples: []string{
			"parley room create team",
			"parley room invite team bob",
			"parley room invite team --link --uses 10 --expires 2d",
			"parley room links team",
			"parley room revoke team 3f9a...",
			"parley room join 'parley://room/...'",
			"parley room accept 1b2c...  # an id from `parley rooms --invites`",
			"parley room promote team bob",
			"parley send '#team' hello",
		},
	})
}
