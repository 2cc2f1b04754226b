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
}
