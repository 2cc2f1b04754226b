package room

import (
	"context"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
)

// MaxSkew bounds how far a live message's hlc may be from our clock.
const MaxSkew = 5 * time.Minute

// Scoring: an invalid message costs its forwarder InvalidWeight times the
// square of its (decaying) count of invalid messages, so a handful of them
// take a peer below GraylistThreshold, after which everything it sends is
// ignored and it is pruned from the mesh.
const (
	InvalidWeight     = -100
	GossipThreshold   = -100
	PublishThreshold  = -200
	GraylistThreshold = -1000
)

// PubsubOptions are the gossipsub options of rooms: StrictSign, flood
// publishing (a message reaches every known topic peer at once), peer
// scoring, and the maximum message size.
func PubsubOptions() []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithMaxMessageSize(group.MaxLargeEnvelopeSize + 4<<10),
		pubsub.WithPeerScore(PeerScoreParams(), &pubsub.PeerScoreThresholds{
			GossipThreshold:             GossipThreshold,
			PublishThreshold:            PublishThreshold,
			GraylistThreshold:           GraylistThreshold,
			AcceptPXThreshold:           100,
			OpportunisticGraftThreshold: 1,
		}),
	}
}

// PeerScoreParams are the router-wide scoring parameters. IP colocation is
// not penalised: several members behind one NAT (or on one machine) are
// normal for a messenger.
func PeerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:                    map[string]*pubsub.TopicScoreParams{},
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		AppSpecificWeight:         1,
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     0.9,
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
	}
}

// TopicScoreParams are the per-room scoring parameters: only invalid
// messages (P4) count, so quiet rooms never penalise honest members.
func TopicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshQuantum:              time.Second, // unused (weight 0), but the router divides by it
		InvalidMessageDeliveriesWeight: InvalidWeight,
		InvalidMessageDeliveriesDecay:  0.99,
	}
}

// verdict is the outcome of checking one room message, with the reason for
// logs and tests.
type verdict struct {
	result pubsub.ValidationResult
	reason string
	// authorOnly marks a rejection that is the author's fault only: when
	// someone else forwarded the message, it is ignored instead.
	authorOnly bool
}

var accept = verdict{result: pubsub.ValidationAccept}

func reject(reason string) verdict      { return verdict{result: pubsub.ValidationReject, reason: reason} }
func ignore(reason string) verdict      { return verdict{result: pubsub.ValidationIgnore, reason: reason} }
func authorFault(reason string) verdict { return verdict{pubsub.ValidationReject, reason, true} }

// validator returns the topic validator of a room. It runs before a
// message is delivered or forwarded.
func (s *Service) validator(id ID) pubsub.ValidatorEx {
	return func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if msg.Local || (from == s.self() && msg.GetFrom() == s.self()) {
			// Our own publication: not subject to the limits we put on
			// others (a burst of our own must not be refused by us).
			return pubsub.ValidationAccept
		}
		v := s.check(id, msg.GetFrom(), msg.Data, true)
		if v.result == pubsub.ValidationAccept && !s.rate.Allow(msg.GetFrom(), s.now()) {
			v = authorFault("author over its rate limit")
		}
		if v.authorOnly && from != msg.GetFrom() {
			// A forwarder may not know yet what we know (a newer roster)
			// or have seen fewer of the author's messages.
			v = ignore(v.reason + " (relayed)")
		}
		if v.result != pubsub.ValidationAccept {
			s.log.Debug("room message refused", "room", id, "author", msg.GetFrom(), "via", from, "reason", v.reason)
		}
		return v.result
	}
}

// check verifies the data of a public room's message from author: size,
// encoding, room, clock skew (ahead always, behind for live messages only)
// and that it is not already in the log. The gossipsub signature is
// checked by the router (or by the sync client). Private rooms have their
// own validator (private_validate.go).
func (s *Service) check(id ID, author peer.ID, data []byte, live bool) verdict {
	if len(data) > wire.MaxRoomMessage {
		return reject("too large")
	}
	m, err := wire.DecodeRoomMessage(data)
	if err != nil {
		return reject("malformed")
	}
	if string(m.RoomId) != string(id[:]) {
		return reject("room id does not match the topic")
	}
	// Every message, live or synced, is at most MaxSkew ahead of our
	// clock; a live one is also at most MaxSkew behind (history may be
	// older).
	ms, _ := wire.UnpackHLC(m.Hlc)
	now := s.now().UnixMilli()
	if ms > now+MaxSkew.Milliseconds() {
		return reject("hlc ahead of our clock by more than the allowed skew")
	}
	if live && ms < now-MaxSkew.Milliseconds() {
		return reject("hlc behind our clock by more than the allowed skew")
	}
	s.mu.RLock()
	r := s.rooms[id]
	s.mu.RUnlock()
	switch {
	case r == nil:
		return ignore("not in this room")
	case !r.public:
		return reject("not a public room")
	case m.Text == "" || m.Epoch != 0:
		return reject("not a public-room message")
	}
	if r.logIdx.mayHold(author, m.MsgId) && s.logged(id, author, m.MsgId) {
		return ignore("already in the log")
	}
	return accept
}

// logged reports whether the room log holds author's message msgID. A
// message is known by its author and id together: anyone may copy an id.
func (s *Service) logged(id ID, author peer.ID, msgID []byte) bool {
	var one int
	err := s.db.QueryRow(context.Background(), nil, "SELECT 1 FROM room_log WHERE room = ? AND sender = ? AND msg_id = ?", id[:], author.String(), msgID).Scan(&one)
	return err == nil
}

// hlcClock is a room's hybrid logical clock.
type hlcClock struct {
	now  func() time.Time
	mu   sync.Mutex
	last uint64 // guarded by mu
}

func newClock(now func() time.Time) *hlcClock { return &hlcClock{now: now} }

// next returns a value greater than every value returned or observed.
func (c *hlcClock) next() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := wire.PackHLC(c.now().UnixMilli(), 0)
	if h <= c.last {
		h = c.last + 1
	}
	c.last = h
	return h
}

// observe moves the clock past a received value, unless the value is
// beyond MaxSkew ahead of our wall clock: no message may push the clock
// further (validators refuse such messages anyway).
func (c *hlcClock) observe(h uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ms, _ := wire.UnpackHLC(h); ms > c.now().Add(MaxSkew).UnixMilli() {
		return
	}
	if h > c.last {
		c.last = h
	}
}

// hlcBound is the largest hlc any accepted message may carry now: our
// wall clock plus MaxSkew.
func (s *Service) hlcBound() uint64 {
	return wire.PackHLC(s.now().Add(MaxSkew).UnixMilli(), 0xffff)
}
