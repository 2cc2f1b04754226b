package mailbox

import "github.com/libp2p/go-libp2p/core/peer"

// OnStream has the mailbox server call f with the remote peer of every
// /parley/mailbox/1 stream it accepts.
func (s *Service) OnStream(f func(peer.ID)) { s.srv.onStream.Store(&f) }
