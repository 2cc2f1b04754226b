package store

// migrations holds the schema, one step per entry; entry i brings the
// database from user_version i to i+1. Steps are append-only: never edit one
// that has shipped.
var migrations = []string{
	// 1: node metadata and the peer address book.
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);
	CREATE TABLE addrbook (
		peer_id    TEXT PRIMARY KEY,
		addrs      TEXT NOT NULL,   -- newline-separated multiaddrs
		last_seen  INTEGER NOT NULL -- unix milliseconds
	);`,
	// 2: contacts, end-to-end state, messages with full-text search, outbox.
	`CREATE TABLE contacts (
		peer_id   TEXT PRIMARY KEY,
		name      TEXT NOT NULL UNIQUE COLLATE NOCASE,
		added_at  INTEGER NOT NULL,
		verified  INTEGER NOT NULL DEFAULT 0,
		last_seen INTEGER NOT NULL DEFAULT 0,
		read_upto INTEGER NOT NULL DEFAULT 0 -- messages.n of the last message read
	);
	-- The node's X3DH key material (identity DH key, signed and one-time prekeys).
	CREATE TABLE e2e_keystore (
		id    INTEGER PRIMARY KEY CHECK (id = 1),
		state BLOB NOT NULL
	);
	-- One Double Ratchet channel per contact.
	CREATE TABLE e2e_channels (
		peer_id TEXT PRIMARY KEY,
		state   BLOB NOT NULL
	);
	CREATE TABLE messages (
		n           INTEGER PRIMARY KEY AUTOINCREMENT,
		id          BLOB NOT NULL UNIQUE, -- 16 random bytes chosen by the sender
		conv        TEXT NOT NULL,        -- the contact's peer ID, or '#' + room id
		sender      TEXT NOT NULL,        -- peer ID
		outgoing    INTEGER NOT NULL,
		body        TEXT NOT NULL,
		sent_at     INTEGER NOT NULL,     -- unix ms, sender's clock
		received_at INTEGER NOT NULL,     -- unix ms, our clock
		seq         INTEGER NOT NULL DEFAULT 0,
		state       TEXT NOT NULL         -- pending, sent, delivered, received
	);
	CREATE INDEX messages_conv ON messages(conv, n);
	CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='n');
	CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
		INSERT INTO messages_fts(rowid, body) VALUES (new.n, new.body);
	END;
	CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
		INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.n, old.body);
	END;
	-- Frames waiting for the peer's ack. payload is the plaintext Payload
	-- until a session exists; envelope is set once, in the transaction that
	-- advances the ratchet, and is what every retry sends.
	CREATE TABLE outbox (
		n        INTEGER PRIMARY KEY AUTOINCREMENT,
		peer_id  TEXT NOT NULL,
		frame_id BLOB NOT NULL UNIQUE,
		payload  BLOB NOT NULL,
		envelope BLOB,
		created  INTEGER NOT NULL
	);
	CREATE INDEX outbox_peer ON outbox(peer_id, n);
	-- Frame ids already committed, so a retransmission is acked, not re-read.
	CREATE TABLE seen_frames (
		frame_id BLOB PRIMARY KEY,
		peer_id  TEXT NOT NULL,
		at       INTEGER NOT NULL
	);
	-- Per-conversation sequence numbers (gap detection).
	CREATE TABLE conv_seq (
		conv     TEXT PRIMARY KEY,
		next_out INTEGER NOT NULL DEFAULT 1,
		last_in  INTEGER NOT NULL DEFAULT 0
	);`,
	// 3: rooms (chat/room): membership, epoch keys, sender-key states, the
	// signed room log, and 1:1 room payloads waiting to be applied.
	`CREATE TABLE rooms (
		id        BLOB PRIMARY KEY,      -- 32-byte room id
		name      TEXT NOT NULL UNIQUE COLLATE NOCASE, -- local display name, without '#'
		public    INTEGER NOT NULL,
		epoch     INTEGER NOT NULL DEFAULT 0, -- current epoch (0 for public rooms)
		roster    BLOB,                  -- serialized SignedRoster of the current epoch
		joined_at INTEGER NOT NULL,
		read_upto INTEGER NOT NULL DEFAULT 0, -- messages.n of the last message read
		state     TEXT NOT NULL DEFAULT 'joined' -- joined, left, removed
	);
	-- Secrets of every epoch this node was a member of.
	CREATE TABLE room_epochs (
		room   BLOB NOT NULL,
		epoch  INTEGER NOT NULL,
		secret BLOB NOT NULL,
		roster BLOB NOT NULL,            -- serialized SignedRoster of the epoch
		PRIMARY KEY (room, epoch)
	);
	-- Our own sending chain per epoch.
	CREATE TABLE room_chains (
		room  BLOB NOT NULL,
		epoch INTEGER NOT NULL,
		state BLOB NOT NULL,
		PRIMARY KEY (room, epoch)
	);
	-- Receiving sender-key states of other members.
	CREATE TABLE room_senders (
		room   BLOB NOT NULL,
		epoch  INTEGER NOT NULL,
		sender TEXT NOT NULL,            -- peer ID
		state  BLOB NOT NULL,
		PRIMARY KEY (room, epoch, sender)
	);
	-- The room log: every accepted gossipsub message, as signed by its author.
	CREATE TABLE room_log (
		room      BLOB NOT NULL,
		msg_id    BLOB NOT NULL,
		hlc       INTEGER NOT NULL,
		epoch     INTEGER NOT NULL,
		sender    TEXT NOT NULL,         -- peer ID (gossipsub from)
		data      BLOB NOT NULL,         -- serialized RoomMessage
		seqno     BLOB NOT NULL,
		signature BLOB NOT NULL,
		key       BLOB,
		status    INTEGER NOT NULL DEFAULT 0, -- 0 waiting for a sender key, 1 shown, 2 undecryptable
		PRIMARY KEY (room, msg_id)
	);
	CREATE INDEX room_log_hlc ON room_log(room, hlc, msg_id);
	CREATE INDEX room_log_waiting ON room_log(room, epoch, sender, status);
	-- Room payloads from 1:1 sessions, applied after their frame commits.
	CREATE TABLE room_inbox (
		n       INTEGER PRIMARY KEY AUTOINCREMENT,
		sender  TEXT NOT NULL,
		payload BLOB NOT NULL,
		at      INTEGER NOT NULL
	);`,
	// 4: mailboxes (chat/mailbox). Served items carry no depositor; quota
	// usage is counted per keyed hash of the depositor and day.
	`CREATE TABLE mailbox_items (
		id          BLOB PRIMARY KEY,       -- 16 random bytes, the Delete capability
		tag         BLOB NOT NULL,          -- 32-byte rotating recipient tag
		digest      BLOB NOT NULL UNIQUE,   -- SHA-256 of blob: idempotent deposits
		blob        BLOB NOT NULL,          -- sealed, opaque
		received_at INTEGER NOT NULL        -- unix milliseconds
	);
	CREATE INDEX mailbox_items_tag ON mailbox_items(tag, received_at);
	CREATE INDEX mailbox_items_age ON mailbox_items(received_at);
	-- Digests of deleted items, so a late re-deposit is not stored again.
	CREATE TABLE mailbox_gone (
		digest BLOB PRIMARY KEY,
		until  INTEGER NOT NULL
	);
	CREATE TABLE mailbox_usage (
		who   BLOB NOT NULL,                -- HMAC of the depositor under a local key
		day   INTEGER NOT NULL,             -- UTC day
		items INTEGER NOT NULL,
		bytes INTEGER NOT NULL,
		PRIMARY KEY (who, day)
	);
	-- Client side: the tag secret given to each contact, and the list
	-- version last queued to it.
	CREATE TABLE mailbox_secrets (
		peer_id   TEXT PRIMARY KEY,
		secret    BLOB NOT NULL,
		announced INTEGER NOT NULL DEFAULT 0
	);
	-- The newest MailboxList received from each contact.
	CREATE TABLE mailbox_lists (
		peer_id   TEXT PRIMARY KEY,
		issued_at INTEGER NOT NULL,
		mailboxes TEXT NOT NULL,            -- newline-separated peer IDs
		secret    BLOB NOT NULL
	);
	-- Frames already deposited, per mailbox.
	CREATE TABLE mailbox_sent (
		frame_id BLOB NOT NULL,
		mailbox  TEXT NOT NULL,
		at       INTEGER NOT NULL,
		PRIMARY KEY (frame_id, mailbox)
	);`,
	// 5: full-text indexing leaves the write path: the chat service indexes
	// new messages in batches (and before every search), recording how far
	// it got in meta 'fts_indexed'; the delete trigger only touches rows
	// already indexed.
	`DROP TRIGGER messages_ai;
	DROP TRIGGER messages_ad;
	INSERT INTO meta(key, value) VALUES ('fts_indexed', (SELECT coalesce(max(n), 0) FROM messages))
		ON CONFLICT(key) DO UPDATE SET value = excluded.value;
	CREATE TRIGGER messages_ad AFTER DELETE ON messages
	WHEN old.n <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed') BEGIN
		INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.n, old.body);
	END;`,
	// 6: the deliverer looks for payloads still waiting for encryption on
	// every pass; a partial index makes that independent of the queue length.
	`CREATE INDEX outbox_plain ON outbox(peer_id, n) WHERE envelope IS NULL;`,
	// 7: a contacts-only mailbox accepts deposits only under tags that one
	// of the recipients it serves registered by fetching with their
	// preimages; until is a UTC day, so registrations of one day share it,
	// and WITHOUT ROWID stores them in tag order, not in arrival order.
	`CREATE TABLE mailbox_tags (
		tag   BLOB PRIMARY KEY,
		until INTEGER NOT NULL
	) WITHOUT ROWID;`,
	// 8 (issue 10): contacts are chosen. A first message from an unknown
	// peer that authenticates is a message request until accepted; blocked
	// peers are refused before any crypto; a muted contact's messages are
	// stored but flagged in events.
	`ALTER TABLE contacts ADD COLUMN muted INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE requests (
		peer_id  TEXT PRIMARY KEY,
		first_at INTEGER NOT NULL, -- unix ms of the first authenticated frame
		last_at  INTEGER NOT NULL
	);
	CREATE TABLE blocked (
		peer_id TEXT PRIMARY KEY,
		at      INTEGER NOT NULL
	);`,
	// 9 (issue 11, hardening): seen_frames is keyed by (peer, frame id),
	// so one peer's frame ids can never make another's look like
	// duplicates, and is pruned by age (DB.Prune, retention.go), as is the
	// address book (by last_seen); the indexes serve the pruning.
	`CREATE TABLE seen_frames_by_peer (
		peer_id  TEXT NOT NULL,
		frame_id BLOB NOT NULL,
		at       INTEGER NOT NULL,
		PRIMARY KEY (peer_id, frame_id)
	) WITHOUT ROWID;
	INSERT INTO seen_frames_by_peer(peer_id, frame_id, at) SELECT peer_id, frame_id, at FROM seen_frames;
	DROP TABLE seen_frames;
	ALTER TABLE seen_frames_by_peer RENAME TO seen_frames;
	CREATE INDEX seen_frames_at ON seen_frames(at);
	CREATE INDEX addrbook_seen ON addrbook(last_seen);`,
	// 10 (issue 9, rooms v2): message ids are unique per conversation and
	// author, never across the database, so a direct message cannot
	// pre-claim a room message's id and a copy of someone's room message
	// cannot suppress the original; the room log dedupes on (room, author,
	// msg id) for the same reason. Own room messages wait in room_outbox
	// until published (re-published at start); room invitations from
	// contacts wait in room_invites for consent; join links an admin made
	// are counted and revocable in room_links; rooms.detail says why a room
	// is not joined.
	`CREATE TABLE messages_v10 (
		n           INTEGER PRIMARY KEY AUTOINCREMENT,
		id          BLOB NOT NULL,
		conv        TEXT NOT NULL,
		sender      TEXT NOT NULL,
		outgoing    INTEGER NOT NULL,
		body        TEXT NOT NULL,
		sent_at     INTEGER NOT NULL,
		received_at INTEGER NOT NULL,
		seq         INTEGER NOT NULL DEFAULT 0,
		state       TEXT NOT NULL,
		UNIQUE (conv, sender, id)
	);
	INSERT INTO messages_v10(n, id, conv, sender, outgoing, body, sent_at, received_at, seq, state)
		SELECT n, id, conv, sender, outgoing, body, sent_at, received_at, seq, state FROM messages;
	DROP TABLE messages;
	ALTER TABLE messages_v10 RENAME TO messages;
	CREATE INDEX messages_conv ON messages(conv, n);
	CREATE INDEX messages_id ON messages(id);
	CREATE TRIGGER messages_ad AFTER DELETE ON messages
	WHEN old.n <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed') BEGIN
		INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.n, old.body);
	END;
	CREATE TABLE room_log_v10 (
		room      BLOB NOT NULL,
		msg_id    BLOB NOT NULL,
		hlc       INTEGER NOT NULL,
		epoch     INTEGER NOT NULL,
		sender    TEXT NOT NULL,
		data      BLOB NOT NULL,
		seqno     BLOB NOT NULL,
		signature BLOB NOT NULL,
		key       BLOB,
		status    INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (room, sender, msg_id)
	);
	INSERT INTO room_log_v10 SELECT room, msg_id, hlc, epoch, sender, data, seqno, signature, key, status FROM room_log;
	DROP TABLE room_log;
	ALTER TABLE room_log_v10 RENAME TO room_log;
	CREATE INDEX room_log_hlc ON room_log(room, hlc, msg_id);
	CREATE INDEX room_log_waiting ON room_log(room, epoch, sender, status);
	CREATE TABLE room_outbox (
		room   BLOB NOT NULL,
		msg_id BLOB NOT NULL,
		data   BLOB NOT NULL,            -- serialized message, as published
		at     INTEGER NOT NULL,
		PRIMARY KEY (room, msg_id)
	);
	CREATE TABLE room_invites (
		id      BLOB PRIMARY KEY,        -- 8 random bytes: accept/decline by it
		room    BLOB NOT NULL,
		sender  TEXT NOT NULL,           -- the inviting contact
		name    TEXT NOT NULL,           -- the room's suggested name
		payload BLOB NOT NULL,           -- the invitation as received
		at      INTEGER NOT NULL,
		expires INTEGER NOT NULL,
		UNIQUE (room, sender)
	);
	CREATE TABLE room_links (
		token   BLOB PRIMARY KEY,        -- 16-byte token id
		room    BLOB NOT NULL,
		link    TEXT NOT NULL,
		uses    INTEGER NOT NULL,
		used    INTEGER NOT NULL DEFAULT 0,
		expires INTEGER NOT NULL,        -- unix ms
		revoked INTEGER NOT NULL DEFAULT 0,
		created INTEGER NOT NULL
	);
	CREATE INDEX room_links_room ON room_links(room);
	ALTER TABLE rooms ADD COLUMN detail TEXT NOT NULL DEFAULT '';`,
	// 11 (issue 9): a join by link that the admin has not admitted yet
	// (offline, or busy) waits in room_joins; the node asks again until it
	// is admitted, across restarts. room_links.epoch: see below.
	`CREATE TABLE room_joins (
		link    TEXT PRIMARY KEY,
		inviter TEXT NOT NULL,           -- the admin's peer ID
		name    TEXT NOT NULL,           -- the room's suggested name
		at      INTEGER NOT NULL,        -- unix ms of the join
		detail  TEXT NOT NULL DEFAULT '' -- why it waits
	);
	-- The epoch whose secret a link holds: the link admits joiners who
	-- prove that secret.
	ALTER TABLE room_links ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;`,
	// 12 (issue 9): private rooms version 2 (docs/PROTOCOL.md, "Rooms
	// version 2"). A room's group state is its current, previous and rival
	// commits (by hash, in room_commits, which also serves fetches) and the
	// derived state of its current and previous epochs; room_keys holds
	// the private halves of our key packages. Version-1 private rooms
	// cannot continue (their members' nodes speak version 1): they are
	// retired, their history kept readable and their secrets erased.
	`CREATE TABLE room_groups (
		room       BLOB PRIMARY KEY,
		cur        BLOB NOT NULL,        -- hash of the current commit
		prev       BLOB,                 -- hash of the previous commit
		rival      BLOB,                 -- hash of the best losing rival of cur
		cur_epoch  BLOB,                 -- group.Epoch of cur (NULL once removed)
		prev_epoch BLOB,                 -- group.Epoch of prev (erased after 10 minutes)
		applied_at INTEGER NOT NULL      -- unix ms the current commit was applied here
	);
	CREATE TABLE room_commits (
		room  BLOB NOT NULL,
		epoch INTEGER NOT NULL,
		hash  BLOB NOT NULL,
		data  BLOB NOT NULL,             -- serialized SignedCommit
		PRIMARY KEY (room, hash)
	);
	CREATE INDEX room_commits_epoch ON room_commits(room, epoch);
	CREATE TABLE room_keys (
		room    BLOB NOT NULL,
		pub     BLOB NOT NULL,           -- HPKE encryption key of the package
		priv    BLOB NOT NULL,           -- group.KeyPackagePrivate
		created INTEGER NOT NULL         -- order of creation
	);
	CREATE INDEX room_keys_room ON room_keys(room);
	-- Joiners admitted under each of our tokens: a repeated request takes
	-- no further use.
	CREATE TABLE room_admitted (
		token  BLOB NOT NULL,
		joiner TEXT NOT NULL,
		at     INTEGER NOT NULL,
		PRIMARY KEY (token, joiner)
	);
	ALTER TABLE room_links ADD COLUMN invitee TEXT NOT NULL DEFAULT '';
	ALTER TABLE room_joins ADD COLUMN request BLOB;
	UPDATE rooms SET state = 'retired',
		detail = 'this private room used rooms version 1, which this release no longer speaks; its history stays readable; ask its owner to create it again',
		name = name || '~v1'
		WHERE public = 0 AND state = 'joined';
	DELETE FROM room_links;
	DELETE FROM room_joins;
	DELETE FROM room_invites;
	DELETE FROM room_outbox WHERE room IN (SELECT id FROM rooms WHERE public = 0);
	DELETE FROM room_epochs;
	DELETE FROM room_chains;
	DELETE FROM room_senders;
	DELETE FROM room_inbox;`,
	// 13 (issue 9): the sender chains of a private room's epoch that moved
	// since the epoch was last stored whole (room_groups): one row per
	// author, written with each message sealed or opened, dropped when the
	// group state is stored again.
	`CREATE TABLE room_chain_states (
		room       BLOB NOT NULL,
		epoch_hash BLOB NOT NULL,        -- hash of the commit that started the epoch
		author     TEXT NOT NULL,        -- peer ID
		state      BLOB NOT NULL,        -- group.Epoch.MarshalChain
		PRIMARY KEY (room, epoch_hash, author)
	);`,
	// 14 (issue 9): fewer pages per stored room message, the cost of every
	// delivery's transaction. room_log_waiting served version-1 rooms'
	// messages waiting for a sender key (retired: no query uses it); the
	// chain states become one B-tree (WITHOUT ROWID: their key is what
	// every write looks up).
	`DROP INDEX room_log_waiting;
	CREATE TABLE room_chain_states_v14 (
		room       BLOB NOT NULL,
		epoch_hash BLOB NOT NULL,
		author     TEXT NOT NULL,
		state      BLOB NOT NULL,
		PRIMARY KEY (room, epoch_hash, author)
	) WITHOUT ROWID;
	INSERT INTO room_chain_states_v14 SELECT room, epoch_hash, author, state FROM room_chain_states;
	DROP TABLE room_chain_states;
	ALTER TABLE room_chain_states_v14 RENAME TO room_chain_states;`,
}
