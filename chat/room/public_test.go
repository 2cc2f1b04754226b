package room_test

import (
	"context"
	"fmt"
	"testing"
)

func TestPublicRoom(t *testing.T) {
	ms := start(t, 3)
	ctx := context.Background()
	for _, m := range ms {
		info, err := m.Rooms().JoinPublic(ctx, "#Lobby")
		if err != nil {
			t.Fatal(err)
		}
		if !info.Public || info.Name != "#lobby" {
			t.Fatalf("info = %+v", info)
		}
	}
	waitMeshed(t, ms, "#lobby")
	var texts []string
	for i, m := range ms {
		text := fmt.Sprintf("public hello %d", i)
		texts = append(texts, text)
		send(t, m, "#lobby", text)
	}
	for _, m := range ms {
		m.waitTexts(t, "#lobby", texts...)
	}
}

// TestRendezvous: 10 members that know only a bootstrap node (which is not
// in the room) find each other through DHT provider records, and every
// member receives every message.
func TestRendezvous(t *testing.T) {
	if testing.Short() {
		t.Skip("10 nodes")
	}
	nodes := start(t, 11)
	ms := nodes[1:]
	ctx := context.Background()
	for _, m := range ms {
		if _, err := m.Rooms().JoinPublic(ctx, "#meetup"); err != nil {
			t.Fatal(err)
		}
	}
	waitMeshed(t, ms, "#meetup")
	var texts []string
	for i, m := range ms {
		text := fmt.Sprintf("meetup %d", i)
		texts = append(texts, text)
		send(t, m, "#meetup", text)
	}
	for _, m := range ms {
		m.waitTexts(t, "#meetup", texts...)
	}
}

// TestJoinPublicConcurrently: joins of one public room racing each other
// and the node's own start (which loads the rooms it is in) all succeed:
// the topic's validator is registered once ("duplicate validator" before).
func TestJoinPublicConcurrently(t *testing.T) {
	ctx := context.Background()
	for range 3 {
		m := start(t, 1)[0]
		errs := make(chan error, 8)
		for range 8 {
			go func() {
				_, err := m.Rooms().JoinPublic(ctx, "#race")
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}
