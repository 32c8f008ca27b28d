package registry

import "sync"

// watcher is one subscription: a channel with a buffer of one, signalled
// without blocking. A pending signal already says "something changed
// since you last looked", so further ones are dropped: memory per watcher
// is constant and Apply never waits for a reader.
type watcher struct {
	ch chan struct{}
}

func (w *watcher) signal() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// watchSet holds the subscriptions of one fsm. Its lock is never held
// while user code runs: signalling is a non-blocking send.
type watchSet struct {
	mu      sync.Mutex
	byName  map[string]map[*watcher]struct{}
	all     map[*watcher]struct{}
	members map[*watcher]struct{}
}

// watchScope is what a subscription watches.
type watchScope uint8

const (
	watchName    watchScope = iota // one name's receivers
	watchAll                       // any change
	watchMembers                   // the member table
)

func (ws *watchSet) add(name string, scope watchScope) (<-chan struct{}, func()) {
	w := &watcher{ch: make(chan struct{}, 1)}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	switch scope {
	case watchAll:
		if ws.all == nil {
			ws.all = make(map[*watcher]struct{})
		}
		ws.all[w] = struct{}{}
	case watchMembers:
		if ws.members == nil {
			ws.members = make(map[*watcher]struct{})
		}
		ws.members[w] = struct{}{}
	default:
		if ws.byName == nil {
			ws.byName = make(map[string]map[*watcher]struct{})
		}
		set := ws.byName[name]
		if set == nil {
			set = make(map[*watcher]struct{})
			ws.byName[name] = set
		}
		set[w] = struct{}{}
	}
	cancel := func() {
		ws.mu.Lock()
		defer ws.mu.Unlock()
		switch scope {
		case watchAll:
			delete(ws.all, w)
			return
		case watchMembers:
			delete(ws.members, w)
			return
		}
		if set := ws.byName[name]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(ws.byName, name)
			}
		}
	}
	return w.ch, cancel
}

// notify signals the watchers of the names in res, of the member table if
// it changed, and, if anything changed, the watchers of everything.
func (ws *watchSet) notify(res result) {
	if !res.changed() {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, name := range res.Names {
		for w := range ws.byName[name] {
			w.signal()
		}
	}
	for w := range ws.all {
		w.signal()
	}
	if res.Members {
		for w := range ws.members {
			w.signal()
		}
	}
}

// notifyAll signals every watcher (after Restore).
func (ws *watchSet) notifyAll() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, set := range ws.byName {
		for w := range set {
			w.signal()
		}
	}
	for w := range ws.all {
		w.signal()
	}
	for w := range ws.members {
		w.signal()
	}
}
