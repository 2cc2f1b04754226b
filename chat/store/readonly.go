package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
)

// ErrNoDatabase is returned by OpenReadOnly when the home holds no
// database yet: no node has ever run there.
var ErrNoDatabase = errors.New("no database yet (no node has run in this home)")

// ErrOlderVersion is returned by OpenReadOnly for a database whose schema
// is older than this binary's: only a node (which migrates) may open it.
var ErrOlderVersion = errors.New("database was written by an older version of parley")

// OpenReadOnly opens the database at path for reading only, for the
// commands that read a home while no node runs there (`parley log`,
// `contacts`, ...). It takes no lock and writes nothing -- not even a
// migration -- so a node may start in the same home meanwhile: SQLite's
// WAL mode lets one writer and readers of other processes share the file.
// Every write through the returned DB fails.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoDatabase, path)
	} else if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(1)
	db := &DB{sql: sdb}
	v, err := db.Version(ctx)
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open database %s: %w: %v", path, ErrCorrupt, err)
	}
	switch {
	case v > len(migrations):
		sdb.Close()
		return nil, fmt.Errorf("open database %s: %w (schema %d, this binary knows up to %d): upgrade parley", path, ErrNewerVersion, v, len(migrations))
	case v < len(migrations):
		sdb.Close()
		return nil, fmt.Errorf("open database %s: %w (schema %d, this binary's is %d): start the node once (`parley up`) to upgrade it", path, ErrOlderVersion, v, len(migrations))
	}
	return db, nil
}
