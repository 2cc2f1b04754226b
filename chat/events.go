package chat

import (
	"sync"

	"github.com/parley-im/parley/peer/apitype"
)

// subscriberBuffer is how many events a slow subscriber may fall behind
// before it is cut off (it then reconnects and re-reads the history).
const subscriberBuffer = 4096

// bus fans events out to subscribers (the local API's /v1/events streams).
type bus struct {
	mu   sync.Mutex
	subs map[chan apitype.Event]struct{} // guarded by mu
}

func newBus() *bus { return &bus{subs: make(map[chan apitype.Event]struct{})} }

// subscribe returns a channel of events and a cancel func. The channel is
// closed if the subscriber falls more than subscriberBuffer events behind.
func (b *bus) subscribe() (<-chan apitype.Event, func()) {
	ch := make(chan apitype.Event, subscriberBuffer)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *bus) publish(e apitype.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Subscribe streams events until cancel is called.
func (s *Service) Subscribe() (<-chan apitype.Event, func()) { return s.events.subscribe() }
