package room_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

type member struct {
	*peertest.Running
	events <-chan apitype.Event
}

// start starts n nodes that bootstrap from the first.
func start(t *testing.T, n int) []*member {
	t.Helper()
	var out []*member
	for i := 0; i < n; i++ {
		var boot []string
		if i > 0 {
			boot = []string{out[0].Addr()}
		}
		r := peertest.Start(t, peertest.Config(t, peertest.Home(t), boot...), nil)
		ev, cancel := r.Chat().Subscribe()
		t.Cleanup(cancel)
		out = append(out, &member{Running: r, events: ev})
	}
	return out
}

func befriend(t *testing.T, a, b *member, name string) {
	t.Helper()
	if _, err := a.Chat().AddContact(context.Background(), b.Host().ID().String(), name); err != nil {
		t.Fatal(err)
	}
}

// waitFor reads m's events until ok holds.
func (m *member) waitFor(t *testing.T, what string, ok func(apitype.Event) bool) apitype.Event {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev := <-m.events:
			if ok(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitEpoch waits until m is in room name at epoch n or later.
func (m *member) waitEpoch(t *testing.T, name string, n uint64) {
	t.Helper()
	ok := func() bool {
		info, err := m.Rooms().Info(context.Background(), name)
		return err == nil && info.Epoch >= n
	}
	if ok() {
		return
	}
	m.waitFor(t, fmt.Sprintf("%s at epoch %d", name, n), func(ev apitype.Event) bool { return ev.Type == "room" && ok() })
}

// waitTexts waits until m has received every text in want in room conv.
func (m *member) waitTexts(t *testing.T, conv string, want ...string) {
	t.Helper()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	log, _ := m.Chat().Log(context.Background(), conv, 0)
	for _, msg := range log {
		delete(missing, msg.Text)
	}
	if len(missing) == 0 {
		return
	}
	m.waitFor(t, fmt.Sprintf("%d messages in %s", len(missing), conv), func(ev apitype.Event) bool {
		if ev.Type == "message" && ev.Message.Conv == conv {
			delete(missing, ev.Message.Text)
		}
		return len(missing) == 0
	})
}

func send(t *testing.T, m *member, conv, text string) {
	t.Helper()
	if _, err := m.Rooms().Send(context.Background(), conv, text); err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
}

// privateRoom makes alice's room "team" with the other members invited.
func privateRoom(t *testing.T, ms []*member) {
	t.Helper()
	ctx := context.Background()
	alice := ms[0]
	if _, err := alice.Rooms().Create(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	for i, m := range ms[1:] {
		name := fmt.Sprintf("m%d", i+1)
		befriend(t, alice, m, name)
		befriend(t, m, alice, "alice")
		if _, err := alice.Rooms().Invite(ctx, "team", name); err != nil {
			t.Fatal(err)
		}
		m.accept(t, "team")
	}
	for _, m := range ms {
		m.waitEpoch(t, "team", uint64(len(ms)))
	}
}

func TestPrivateRoomThreeMembers(t *testing.T) {
	ms := start(t, 3)
	privateRoom(t, ms)
	var texts []string
	for i, m := range ms {
		text := fmt.Sprintf("hello from %d", i)
		texts = append(texts, text)
		send(t, m, "#team", text)
	}
	for _, m := range ms {
		m.waitTexts(t, "#team", texts...)
	}
	info, err := ms[1].Rooms().Info(context.Background(), "#team")
	if err != nil || len(info.Members) != 3 || info.Role != "member" {
		t.Fatalf("bob's view: %+v, %v", info, err)
	}
	log, err := ms[2].Chat().Log(context.Background(), "#team", 0)
	var texts2 int
	for _, msg := range log {
		if msg.State != room.StateSystem {
			texts2++
		}
	}
	if err != nil || texts2 != 3 {
		t.Fatalf("carol's log: %+v, %v", log, err)
	}
}

// waitMeshed waits until every member has at least one topic peer and the
// topic peers form a connected graph (state without an event to wait on).
func waitMeshed(t *testing.T, ms []*member, name string) {
	t.Helper()
	peertest.Eventually(t, 60*time.Second, "members to find each other", func() bool {
		for _, m := range ms {
			info, err := m.Rooms().Info(context.Background(), name)
			if err != nil || info.Peers == 0 {
				return false
			}
		}
		// connectivity over topic peers
		idx := map[string]int{}
		for i, m := range ms {
			idx[m.Host().ID().String()] = i
		}
		seen := map[int]bool{0: true}
		queue := []int{0}
		for len(queue) > 0 {
			i := queue[0]
			queue = queue[1:]
			for _, p := range ms[i].Rooms().PubSub().ListPeers(ms[i].roomTopic(t, name)) {
				if j, ok := idx[p.String()]; ok && !seen[j] {
					seen[j] = true
					queue = append(queue, j)
				}
			}
		}
		return len(seen) == len(ms)
	})
}

func (m *member) roomTopic(t *testing.T, name string) string {
	info, err := m.Rooms().Info(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return info.Topic
}

// accept waits for m's invitation into room and accepts it.
func (m *member) accept(t *testing.T, room string) {
	t.Helper()
	var id string
	held := func() bool {
		invs, err := m.Rooms().Invites(context.Background())
		for _, inv := range invs {
			if err == nil && inv.Room == "#"+room {
				id = inv.ID
			}
		}
		return id != ""
	}
	if !held() {
		m.waitFor(t, "an invitation into #"+room, func(ev apitype.Event) bool { return ev.Type == "room" && held() })
	}
	res, err := m.Rooms().AcceptInvite(context.Background(), id)
	if err != nil || res.Status != "joined" {
		t.Fatalf("accept the invitation into #%s: %+v, %v", room, res, err)
	}
}
