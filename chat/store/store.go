// Package store is a node's embedded database: one SQLite file per node
// (modernc.org/sqlite, pure Go), in WAL mode, with versioned migrations.
//
// Every write goes through a single connection, so transactions are
// serialised and never fail with SQLITE_BUSY inside one process; a second
// process is kept out by the node's home lock. The schema version lives in
// PRAGMA user_version: a database written by a newer Parley is refused with
// ErrNewerVersion instead of being read with the wrong schema.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database file's name inside a node's home.
const FileName = "parley.db"

// The WAL's bounds: a checkpoint every walCheckpointPages pages (16 MiB of
// 4 KiB pages) and, once checkpointed, the file cut back to walSizeLimit
// bytes. Four times SQLite's default: a checkpoint writes each page once
// however often it changed since the last one (the pages of the outbox,
// of the latest messages and of the indexes change with every batch), so
// the node writes 8% fewer bytes per message, and a one-at-a-time sender
// meets a checkpoint every ~300 messages instead of every ~80.
const (
	walCheckpointPages = 4000
	walSizeLimit       = 4 << 20
)

// ErrNewerVersion is returned by Open for a database whose schema is newer
// than this binary understands.
var ErrNewerVersion = errors.New("database was created by a newer version of parley")

// ErrCorrupt is returned by Open when the file is not a usable SQLite database.
var ErrCorrupt = errors.New("database is corrupted or not a parley database")

// DB is an open node database.
type DB struct {
	sql   *sql.DB
	stmts stmtCache
	// Counters for benchmarks and diagnostics (Ops).
	txs, ops atomic.Uint64
}

// Ops returns how many transactions Tx committed and how many statements
// went through Exec, Query and QueryRow since Open.
func (db *DB) Ops() (txs, statements uint64) { return db.txs.Load(), db.ops.Load() }

// Open opens (creating if needed) the database at path and brings its schema
// up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	// NORMAL: a commit is in the WAL, not yet synced, when it returns. It
	// survives the crash of the process, not a power cut or a kernel crash
	// (README, "Performance"); FULL would sync the WAL on every commit.
	q.Add("_pragma", "synchronous(NORMAL)")
	// The WAL is checkpointed every walCheckpointPages pages and cut
	// back to walSizeLimit bytes after each checkpoint, so it stays
	// bounded under load instead of keeping its largest size.
	q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walCheckpointPages))
	q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walSizeLimit))
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	// The database holds history and keys: only its owner may read it.
	// SQLite gives the -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	} else {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(1)
	db := &DB{sql: sdb}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.closeStmts()
	return db.sql.Close()
}

// SQL returns the underlying handle for packages that own their tables.
func (db *DB) SQL() *sql.DB { return db.sql }

// Tx runs fn in one transaction, committing if it returns nil.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		db.prepareWanted(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.txs.Add(1)
	db.prepareWanted(ctx)
	return nil
}

// Version returns the schema version of the open database.
func (db *DB) Version(ctx context.Context) (int, error) {
	var v int
	err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

func (db *DB) migrate(ctx context.Context) error {
	v, err := db.Version(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if v > len(migrations) {
		return fmt.Errorf("%w (schema %d, this binary knows up to %d): upgrade parley", ErrNewerVersion, v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to schema %d: %w", i+1, err)
		}
	}
	return nil
}

// GetMeta returns a node metadata value; ok is false if it is not set.
func (db *DB) GetMeta(ctx context.Context, key string) (value string, ok bool, err error) {
	err = db.sql.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("get meta %q: %w", key, err)
	}
	return value, true, nil
}

// SetMeta stores a node metadata value.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	_, err := db.sql.ExecContext(ctx,
		"INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value)
	if err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	return nil
}
