package room

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Internals for the tests of package room_test.
var MAC = mac

// SetTestPubsubOptions makes every Service created until the end of t add
// opts(host) to its gossipsub options.
func SetTestPubsubOptions(t testing.TB, opts func(host.Host) []pubsub.Option) {
	testPubsubOptions = opts
	t.Cleanup(func() { testPubsubOptions = nil })
}

// AdmitAll makes the private room name of s admit every joiner through one
// link (benchmarks and tests: joins that arrive together share commits).
func (s *Service) AdmitAll(ctx context.Context, name string, joiners []*Service) error {
	l, err := s.Link(ctx, name, len(joiners), 0)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(joiners))
	for i, j := range joiners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				res, err := j.JoinLink(ctx, l.Link)
				if err != nil {
					errs[i] = err
					return
				}
				if res.Status == "joined" {
					return
				}
				if ctx.Err() != nil {
					errs[i] = fmt.Errorf("joiner %d: %s", i, res.Detail)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// EpochSnapshot copies the node's current epoch of a private room (its
// keys and ratchets) as they are now: what a member removed after this
// moment keeps.
func (s *Service) EpochSnapshot(name string) (*group.Epoch, error) {
	r, err := s.byName(name)
	if err != nil {
		return nil, err
	}
	r.gmu.Lock()
	defer r.gmu.Unlock()
	if r.g == nil || r.g.cur() == nil {
		return nil, ErrNotMember
	}
	b, err := r.g.cur().MarshalBinary()
	if err != nil {
		return nil, err
	}
	return group.UnmarshalEpoch(b)
}

// GroupEpoch returns the number and commit hash of the node's current
// epoch of a private room.
func (s *Service) GroupEpoch(name string) (uint64, group.Hash, error) {
	r, err := s.byName(name)
	if err != nil {
		return 0, group.Hash{}, err
	}
	r.gmu.Lock()
	defer r.gmu.Unlock()
	if r.g == nil || r.g.cur() == nil {
		return 0, group.Hash{}, ErrNotMember
	}
	return r.g.st.Commit.Epoch, r.g.st.Commit.Hash(), nil
}

// RoomID returns the id of a joined room.
func (s *Service) RoomID(name string) (ID, error) {
	r, err := s.byName(name)
	if err != nil {
		return ID{}, err
	}
	return r.id, nil
}

// Author returns the peer ID of the node.
func (s *Service) Author() peer.ID { return s.self() }

// SetTestConfig makes every Service created until the end of t pass its
// Config through edit first (edit learns the node's host).
func SetTestConfig(t testing.TB, edit func(host.Host, *Config)) {
	testConfig = edit
	t.Cleanup(func() { testConfig = nil })
}

// SetBeforePublish makes f run before each publication of the node's own
// messages; an error from f stands for a failed publication.
func SetBeforePublish(c *Config, f func() error) { c.beforePublish = f }

// ProtocolRoomSync is /parley/roomsync/1; ProtocolRoomSync2 is
// /parley/roomsync/2.
const (
	ProtocolRoomSync  = protocolRoomSync
	ProtocolRoomSync2 = protocolRoomSync2
)

// Ingest stores recs in room name as if they had arrived together on its
// topic, validated: one batch, one transaction.
func (s *Service) Ingest(ctx context.Context, name string, recs ...*wirepb.SyncedMessage) error {
	r, err := s.byName(name)
	if err != nil {
		return err
	}
	_, err = s.ingest(ctx, r, recs...)
	return err
}

// SetChainPageBytes bounds the size of the commits one sync response
// carries until the end of t (at least one commit is always served).
func SetChainPageBytes(t testing.TB, n int) {
	old := chainPageBytes
	chainPageBytes = n
	t.Cleanup(func() { chainPageBytes = old })
}
