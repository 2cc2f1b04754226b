package room

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// logIndex tells the validators of a room, without the database, that a
// message is not in the room's log: a Bloom filter over the (author,
// msg_id) of every logged message. "Not in the filter" is exact (every row
// the log has, or had, was added); "in the filter" means only "maybe", and
// the validator then asks the database. Validators run inline in the
// gossipsub pipeline: they must not queue behind the transaction that
// stores the messages they let through (room.ingest), which holds the
// database's one connection.
//
// The filter starts unloaded (every lookup says "maybe": the database
// decides, as before it existed). The room's reader loads it from the log
// once, before it stores anything; ingest adds each key it stored, loaded
// or not, so nothing stored during the load is missed. Rows deleted from
// the log stay in the filter: a false "maybe", which the database answers.
//
// The filter grows as a list of Bloom filters, each twice the size of the
// one before, at about ten bits and seven probes per key (a false "maybe"
// well under 1%). Hashes are seeded per process, so nobody can aim for
// collisions; one that did would only cost us database lookups.
type logIndex struct {
	mu     sync.Mutex
	loaded bool     // guarded by mu
	blooms []*bloom // guarded by mu; the last one takes new keys
}

const (
	bloomProbes  = 7
	bloomBits    = 10 // bits per key
	bloomMinKeys = 4096
)

var logIndexSeed = maphash.MakeSeed()

type bloom struct {
	bits     []uint64
	keys     int // added so far
	capacity int // keys it takes before the next filter starts
}

func newBloom(capacity int) *bloom {
	capacity = max(capacity, bloomMinKeys)
	return &bloom{bits: make([]uint64, (capacity*bloomBits+63)/64), capacity: capacity}
}

// logKeyHash hashes an (author, msg_id) pair into the two halves double
// hashing probes with.
func logKeyHash(author peer.ID, msgID []byte) (uint64, uint64) {
	var h maphash.Hash
	h.SetSeed(logIndexSeed)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(author)))
	h.Write(n[:])
	h.WriteString(string(author))
	h.Write(msgID)
	a := h.Sum64()
	b := a>>33 | a<<31 | 1 // odd: probes cover the table
	return a, b * 0x9e3779b97f4a7c15
}

func (b *bloom) add(h1, h2 uint64) {
	m := uint64(len(b.bits) * 64)
	for i := range uint64(bloomProbes) {
		bit := (h1 + i*h2) % m
		b.bits[bit/64] |= 1 << (bit % 64)
	}
	b.keys++
}

func (b *bloom) has(h1, h2 uint64) bool {
	m := uint64(len(b.bits) * 64)
	for i := range uint64(bloomProbes) {
		bit := (h1 + i*h2) % m
		if b.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// add records that the log holds author's message msgID.
func (x *logIndex) add(author peer.ID, msgID []byte) {
	h1, h2 := logKeyHash(author, msgID)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(h1, h2)
}

func (x *logIndex) addLocked(h1, h2 uint64) {
	if len(x.blooms) == 0 {
		x.blooms = append(x.blooms, newBloom(bloomMinKeys))
	}
	last := x.blooms[len(x.blooms)-1]
	if last.keys >= last.capacity {
		last = newBloom(2 * last.capacity)
		x.blooms = append(x.blooms, last)
	}
	last.add(h1, h2)
}

// mayHold reports whether the log may hold author's message msgID: false
// is exact once the index is loaded.
func (x *logIndex) mayHold(author peer.ID, msgID []byte) bool {
	h1, h2 := logKeyHash(author, msgID)
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.loaded {
		return true
	}
	for _, b := range x.blooms {
		if b.has(h1, h2) {
			return true
		}
	}
	return false
}

// loadLogIndex adds every key of the room's log to its index, once. The
// room's reader calls it before it stores anything.
func (s *Service) loadLogIndex(ctx context.Context, r *room) error {
	x := &r.logIdx
	x.mu.Lock()
	done := x.loaded
	x.mu.Unlock()
	if done {
		return nil
	}
	var n int
	if err := s.db.QueryRow(ctx, nil, "SELECT count(*) FROM room_log WHERE room = ?", r.id[:]).Scan(&n); err != nil {
		return err
	}
	rows, err := s.db.Query(ctx, nil, "SELECT sender, msg_id FROM room_log WHERE room = ?", r.id[:])
	if err != nil {
		return err
	}
	defer rows.Close()
	keys := make([]logHash, 0, n)
	for rows.Next() {
		var (
			sender string
			id     []byte
		)
		if err := rows.Scan(&sender, &id); err != nil {
			return err
		}
		p, err := peer.Decode(sender)
		if err != nil {
			continue // never matches an author the validator sees
		}
		h1, h2 := logKeyHash(p, id)
		keys = append(keys, logHash{h1, h2})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	x.load(keys)
	return nil
}

// logHash is a key of the log, hashed (logKeyHash).
type logHash struct{ h1, h2 uint64 }

// load adds the keys the log held when the index was loaded, once: from
// then on, "not in the index" is exact.
func (x *logIndex) load(keys []logHash) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.loaded {
		return
	}
	// One filter sized for the log and the room's growth, before the
	// keys ingest added meanwhile.
	x.blooms = append([]*bloom{newBloom(2 * len(keys))}, x.blooms...)
	for _, k := range keys {
		x.blooms[0].add(k.h1, k.h2)
	}
	x.loaded = true
}
