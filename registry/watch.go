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
	mu     sync.Mutex
	byName map[string]map[*watcher]struct{}
	all    map[*watcher]struct{}
}

func (ws *watchSet) add(name string, all bool) (<-chan struct{}, func()) {
	w := &watcher{ch: make(chan struct{}, 1)}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if all {
		if ws.all == nil {
			ws.all = make(map[*watcher]struct{})
		}
		ws.all[w] = struct{}{}
	} else {
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
		if all {
			delete(ws.all, w)
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

// notify signals the watchers of the names in res and, if anything
// changed, the watchers of everything.
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
}
