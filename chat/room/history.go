package room

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/peer/apitype"
)

// StateSystem is the messages.state of a membership line in a room's
// history (joined, no longer a member, role changes, removed, left): its
// sender is the actor (the roster's issuer), its text says what happened.
const StateSystem = "system"

// line is one membership line to add to a room's history.
type line struct {
	actor peer.ID
	text  string
}

// who names p for a history line: its contact name, else its peer ID.
func (s *Service) who(ctx context.Context, p peer.ID) string {
	if p == s.self() {
		return "you"
	}
	if n := s.chat.ContactName(ctx, p); n != "" {
		return n
	}
	return p.String()
}

// addLines stores membership lines in the room's history and returns
// their messages, to publish once tx commits.
func (s *Service) addLines(ctx context.Context, tx *sql.Tx, r *room, lines []line) ([]*apitype.Message, error) {
	var out []*apitype.Message
	now := s.now()
	for _, l := range lines {
		id := make([]byte, 16)
		rand.Read(id)
		if err := insertMessage(ctx, tx, r.id, id, l.actor, l.actor == s.self(), l.text, now.UnixMilli(), now, StateSystem); err != nil {
			return nil, err
		}
		out = append(out, &apitype.Message{ID: hex.EncodeToString(id), Conv: "#" + r.name, From: l.actor.String(),
			Outgoing: l.actor == s.self(), Text: l.text, SentAt: now, State: StateSystem})
	}
	return out, nil
}

// gone describes a room we left or were removed from, found by its name
// (as listed by Rooms: the name and a suffix), or ErrNoRoom.
func (s *Service) gone(ctx context.Context, name string) (Info, error) {
	name = strings.TrimPrefix(name, "#")
	var (
		id            []byte
		state, detail string
		public        bool
	)
	err := s.db.QueryRow(ctx, nil, "SELECT id, name, public, state, detail FROM rooms WHERE state NOT IN ('joined', 'leaving') AND (name = ? OR name LIKE ? || '~%') ORDER BY joined_at DESC LIMIT 1",
		name, name).Scan(&id, &name, &public, &state, &detail)
	if errors.Is(err, sql.ErrNoRows) {
		return Info{}, fmt.Errorf("%w: #%s (see `parley rooms`)", ErrNoRoom, name)
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Name: "#" + name, ID: hex.EncodeToString(id), Public: public, State: state, Detail: detail}, nil
}

// goneRooms lists the rooms we left or were removed from.
func (s *Service) goneRooms(ctx context.Context) []Info {
	rows, err := s.db.Query(ctx, nil, "SELECT id, name, public, state, detail FROM rooms WHERE state NOT IN ('joined', 'leaving') ORDER BY name")
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []Info
	for rows.Next() {
		var (
			i  Info
			id []byte
		)
		if rows.Scan(&id, &i.Name, &i.Public, &i.State, &i.Detail) == nil {
			i.Name, i.ID = "#"+i.Name, hex.EncodeToString(id)
			out = append(out, i)
		}
	}
	return out
}
