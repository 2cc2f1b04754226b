package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// TestMigration10 upgrades a schema-9 database holding messages and a
// room log: rows and their numbers survive, message ids become unique per
// conversation and author (a direct message no longer blocks a room
// message with the same id), numbering continues, full-text deletion
// still works, and the room log dedupes per author.
func TestMigration10(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		if _, err := raw.Exec(migrations[i]); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	id := []byte("0123456789abcdef")
	for _, q := range []string{
		"PRAGMA user_version = 9",
		fmt.Sprintf(`INSERT INTO messages(n, id, conv, sender, outgoing, body, sent_at, received_at, state) VALUES(41, x'%x', 'peerA', 'peerA', 0, 'a direct message', 1, 1, 'received')`, id),
		`INSERT INTO messages_fts(rowid, body) VALUES(41, 'a direct message')`,
		`UPDATE meta SET value = '41' WHERE key = 'fts_indexed'`,
		fmt.Sprintf(`INSERT INTO room_log(room, msg_id, hlc, epoch, sender, data, seqno, signature, status) VALUES(x'01', x'%x', 1, 0, 'peerB', x'00', x'00', x'00', 1)`, id),
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.Version(ctx); v != len(migrations) {
		t.Fatalf("version %d, want %d", v, len(migrations))
	}
	var body string
	if err := db.SQL().QueryRow("SELECT body FROM messages WHERE n = 41").Scan(&body); err != nil || body != "a direct message" {
		t.Fatalf("message 41 after the migration: %q, %v", body, err)
	}
	insert := func(conv, sender string) (int64, error) {
		res, err := db.SQL().Exec(`INSERT INTO messages(id, conv, sender, outgoing, body, sent_at, received_at, state) VALUES(?, ?, ?, 0, 'x', 1, 1, 'received')`, id, conv, sender)
		if err != nil {
			return 0, err
		}
		return res.LastInsertId()
	}
	n, err := insert("#room", "peerB")
	if err != nil {
		t.Fatalf("a room message with a direct message's id: %v", err)
	}
	if n <= 41 {
		t.Errorf("new message numbered %d, after 41", n)
	}
	if _, err := insert("#room", "peerC"); err != nil {
		t.Errorf("another author's copy of the id: %v", err)
	}
	if _, err := insert("#room", "peerB"); err == nil {
		t.Error("the same author's id twice in one conversation was accepted")
	}
	if _, err := db.SQL().Exec("DELETE FROM messages WHERE n = 41"); err != nil {
		t.Fatalf("delete an indexed message: %v", err)
	}
	var hits int
	db.SQL().QueryRow("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'direct'").Scan(&hits)
	if hits != 0 {
		t.Errorf("%d full-text hits for a deleted message", hits)
	}
	if _, err := db.SQL().Exec(fmt.Sprintf(`INSERT INTO room_log(room, msg_id, hlc, epoch, sender, data, seqno, signature, status) VALUES(x'01', x'%x', 1, 0, 'peerC', x'00', x'00', x'00', 1)`, id)); err != nil {
		t.Errorf("another author's message with a logged id: %v", err)
	}
}
