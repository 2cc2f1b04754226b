package room_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// TestOfflineCatchUp: a member offline while 100 messages are sent gets
// them all over /parley/roomsync/1 when it comes back, and a restart loses
// nothing.
func TestOfflineCatchUp(t *testing.T) {
	ms := start(t, 3)
	ctx := context.Background()
	for _, m := range ms {
		if _, err := m.Rooms().JoinPublic(ctx, "#hist"); err != nil {
			t.Fatal(err)
		}
	}
	waitMeshed(t, ms, "#hist")
	away := ms[2]
	home := away.Home
	away.Stop(t)

	var texts []string
	for i := 0; i < 100; i++ {
		text := fmt.Sprintf("while away %03d", i)
		texts = append(texts, text)
		send(t, ms[0], "#hist", text)
	}
	ms[1].waitTexts(t, "#hist", texts...)

	back := restart(t, home, ms[0].Addr())
	back.waitTexts(t, "#hist", texts...)
	checkLog(t, back, "#hist", 100)

	back.Stop(t)
	again := restart(t, home, ms[0].Addr())
	peertest.Eventually(t, 10*time.Second, "rooms loaded", func() bool {
		_, err := again.Rooms().Info(ctx, "#hist")
		return err == nil
	})
	checkLog(t, again, "#hist", 100)
}

func restart(t *testing.T, home, boot string) *member {
	t.Helper()
	r := peertest.Start(t, peertest.Config(t, home, boot), nil)
	ev, cancel := r.Chat().Subscribe()
	t.Cleanup(cancel)
	return &member{Running: r, events: ev}
}

func checkLog(t *testing.T, m *member, conv string, n int) {
	t.Helper()
	log, err := m.Chat().Log(context.Background(), conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, msg := range log {
		if seen[msg.ID] {
			t.Fatalf("message %s twice", msg.ID)
		}
		seen[msg.ID] = true
	}
	if len(log) != n {
		t.Fatalf("log has %d messages, want %d", len(log), n)
	}
	_ = apitype.StateReceived
}
