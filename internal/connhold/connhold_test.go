package connhold

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

func newCM(t *testing.T) *connmgr.BasicConnMgr {
	t.Helper()
	cm, err := connmgr.NewConnManager(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cm.Close() })
	return cm
}

func TestHoldUntilRelease(t *testing.T) {
	cm := newCM(t)
	h := New(cm, "task")
	p := peer.ID("p")
	cm.Protect(p, "other")
	h.Hold(p, 0)
	h.Hold(p, time.Nanosecond) // does not shorten a hold until Release
	time.Sleep(10 * time.Millisecond)
	if !h.Held(p) || !cm.IsProtected(p, "task") {
		t.Fatal("a hold until Release ended early")
	}
	h.Release(p)
	if h.Held(p) || cm.IsProtected(p, "task") {
		t.Fatal("still held after Release")
	}
	if !cm.IsProtected(p, "other") {
		t.Fatal("Release dropped another tag's protection")
	}
}

func TestHoldExpires(t *testing.T) {
	cm := newCM(t)
	h := New(cm, "task")
	t.Cleanup(h.Close)
	short, long := peer.ID("short"), peer.ID("long")
	h.Hold(long, time.Hour)
	h.Hold(short, 20*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for cm.IsProtected(short, "task") {
		if time.Now().After(deadline) {
			t.Fatal("a hold with a duration never ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if h.Held(short) {
		t.Fatal("expired hold still listed")
	}
	if !cm.IsProtected(long, "task") {
		t.Fatal("the longer hold ended with the shorter one")
	}
	h.Close()
	if cm.IsProtected(long, "task") {
		t.Fatal("Close left a protection")
	}
	h.Hold(short, 0)
	if cm.IsProtected(short, "task") {
		t.Fatal("Hold after Close protected")
	}
}
