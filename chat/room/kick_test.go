package room_test

import (
	"context"
	"fmt"
	"testing"
)

// TestKickRotatesKeys: after carol is kicked, she still holds every old key
// and stays connected, yet nothing sent afterwards reaches her log, and the
// others still talk. (TODO: also keep a raw subscription on her topic.)
func TestKickRotatesKeys(t *testing.T) {
	ms := start(t, 3)
	privateRoom(t, ms)
	alice, bob, carol := ms[0], ms[1], ms[2]
	send(t, alice, "#team", "before the kick")
	carol.waitTexts(t, "#team", "before the kick")
	topic := carol.roomTopic(t, "#team")
	if _, err := alice.Rooms().Kick(context.Background(), "#team", "m2"); err != nil {
		t.Fatal(err)
	}
	alice.waitEpoch(t, "team", 4)
	bob.waitEpoch(t, "team", 4)
	var after []string
	for i := 0; i < 5; i++ {
		text := fmt.Sprintf("after the kick %d", i)
		after = append(after, text)
		send(t, alice, "#team", text)
	}
	bob.waitTexts(t, "#team", after...)
	log, _ := carol.Chat().Log(context.Background(), "#"+topic[len(topic)-64:], 0)
	for _, m := range log {
		for _, a := range after {
			if m.Text == a {
				t.Fatalf("kicked member read %q", a)
			}
		}
	}
}
