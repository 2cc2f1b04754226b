package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache holds statements prepared once on the database, so hot paths
// skip SQLite's parser. A statement first seen inside a transaction runs
// unprepared there (the one connection is busy) and is prepared after the
// transaction ends.
type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt // guarded by mu
	want  map[string]bool      // guarded by mu: seen inside a transaction
}

func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stmts[q]
	if st == nil {
		if c.want == nil {
			c.want = make(map[string]bool)
		}
		c.want[q] = true
	}
	return st
}

// prepareWanted prepares the statements seen since the last call; the
// connection must be free.
func (db *DB) prepareWanted(ctx context.Context) {
	c := &db.stmts
	c.mu.Lock()
	want := c.want
	c.want = nil
	c.mu.Unlock()
	for q := range want {
		st, err := db.sql.PrepareContext(ctx, q)
		if err != nil {
			continue // it will keep running unprepared
		}
		c.mu.Lock()
		if c.stmts == nil {
			c.stmts = make(map[string]*sql.Stmt)
		}
		if c.stmts[q] == nil {
			c.stmts[q] = st
		} else {
			st.Close()
		}
		c.mu.Unlock()
	}
}

func (db *DB) closeStmts() {
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	for _, st := range db.stmts.stmts {
		st.Close()
	}
	db.stmts.stmts = nil
}

// Exec runs q in tx (or on the database when tx is nil) through the
// statement cache.
func (db *DB) Exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	db.ops.Add(1)
	if st := db.stmts.get(q); st != nil {
		if tx != nil {
			st = tx.StmtContext(ctx, st)
		}
		return st.ExecContext(ctx, args...)
	}
	if tx != nil {
		return tx.ExecContext(ctx, q, args...)
	}
	defer db.prepareWanted(ctx)
	return db.sql.ExecContext(ctx, q, args...)
}

// Query runs q in tx (or on the database) through the statement cache.
func (db *DB) Query(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	db.ops.Add(1)
	if st := db.stmts.get(q); st != nil {
		if tx != nil {
			st = tx.StmtContext(ctx, st)
		}
		return st.QueryContext(ctx, args...)
	}
	if tx != nil {
		return tx.QueryContext(ctx, q, args...)
	}
	return db.sql.QueryContext(ctx, q, args...)
}

// QueryRow runs q in tx (or on the database) through the statement cache.
func (db *DB) QueryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	db.ops.Add(1)
	if st := db.stmts.get(q); st != nil {
		if tx != nil {
			st = tx.StmtContext(ctx, st)
		}
		return st.QueryRowContext(ctx, args...)
	}
	if tx != nil {
		return tx.QueryRowContext(ctx, q, args...)
	}
	return db.sql.QueryRowContext(ctx, q, args...)
}
