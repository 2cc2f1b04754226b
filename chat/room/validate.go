package room

import (
	"context"
	"crypto/hmac"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

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
		pubsub.WithMaxMessageSize(wire.MaxRoomMessage + 4<<10),
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
		if msg.Local {
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

// check verifies the data of a room message from author: size, encoding,
// room, epoch, roster membership and membership MAC (private rooms), clock
// skew (live messages only) and that it is not already in the log. The
// gossipsub signature is checked by the router (or by the sync client).
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
	if live {
		ms, _ := wire.UnpackHLC(m.Hlc)
		now := s.now().UnixMilli()
		if ms > now+MaxSkew.Milliseconds() || ms < now-MaxSkew.Milliseconds() {
			return reject("hlc outside the allowed clock skew")
		}
	}
	s.mu.RLock()
	r := s.rooms[id]
	var e, cur *epoch
	if r != nil {
		e, cur = r.epochs[m.Epoch], r.current()
	}
	public := r != nil && r.public
	s.mu.RUnlock()
	switch {
	case r == nil:
		return ignore("not in this room")
	case public:
		if m.Text == "" || m.Epoch != 0 {
			return reject("not a public-room message")
		}
	case m.Text != "":
		return reject("clear text in a private room")
	case e == nil:
		// An epoch we have no keys for: newer than ours (its keys are on the
		// way) or one we were never part of. Not the forwarder's fault.
		return ignore("unknown epoch")
	case e.roles[author] == 0:
		return reject("author not in the roster")
	case !hmac.Equal(m.MembershipMac, mac(e.macKey, wire.MembershipMACInput(m))):
		return reject("bad membership MAC")
	case live && cur != nil && cur.roles[author] == 0:
		// A removed member still holds the keys of its old epochs: live
		// traffic from it is refused once we know it was removed. (Synced
		// history is not: it comes only from current members, who
		// accepted it live.)
		return authorFault("author removed from the room")
	}
	if s.logged(id, m.MsgId) {
		return ignore("already in the log")
	}
	return accept
}

func (s *Service) logged(id ID, msgID []byte) bool {
	var one int
	err := s.db.QueryRow(context.Background(), nil, "SELECT 1 FROM room_log WHERE room = ? AND msg_id = ?", id[:], msgID).Scan(&one)
	return err == nil
}

// hlcClock is the node's hybrid logical clock over all rooms.
type hlcClock struct {
	now  func() time.Time
	mu   sync.Mutex
	last uint64 // guarded by mu
}

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

// observe moves the clock past a received value.
func (c *hlcClock) observe(h uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h > c.last {
		c.last = h
	}
}
