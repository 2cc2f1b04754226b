package peer

import (
	"testing"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// TestUserConnManagerDHT: on a user node the DHT's routing table tags its
// peers instead of protecting them; other protections stand.
func TestUserConnManagerDHT(t *testing.T) {
	basic, err := connmgr.NewConnManager(LowWater, HighWater)
	if err != nil {
		t.Fatal(err)
	}
	defer basic.Close()
	cm := userConnManager{basic}
	p := lpeer.ID("peer")
	cm.Protect(p, dhtProtectTag)
	if cm.IsProtected(p, "") {
		t.Fatal("the DHT's protection pinned the peer")
	}
	if info := cm.GetTagInfo(p); info == nil || info.Value == 0 {
		t.Fatalf("routing-table peer not tagged: %+v", info)
	}
	cm.Protect(p, "pubsub:topic")
	if !cm.IsProtected(p, "") {
		t.Fatal("gossipsub's protection dropped")
	}
	if !cm.Unprotect(p, dhtProtectTag) {
		t.Fatal("Unprotect of the DHT's tag reports the peer unprotected while gossipsub protects it")
	}
	if cm.Unprotect(p, "pubsub:topic") || cm.IsProtected(p, "") {
		t.Fatal("peer still protected")
	}
	if info := cm.GetTagInfo(p); info != nil && info.Value != 0 {
		t.Fatalf("routing-table tag left after Unprotect: %+v", info)
	}
}
