package actor

import (
	"hash/maphash"
	"sync"
)

const tableShards = 32

// table maps actor IDs to local processes. It is sharded so that lookups on
// the send path take an uncontended read lock and allocate nothing.
type table struct {
	seed   maphash.Seed
	shards [tableShards]tableShard
}

type tableShard struct {
	mu sync.RWMutex
	m  map[string]*process
	_  [40]byte // keep shards on separate cache lines
}

func newTable() *table {
	t := &table{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*process)
	}
	return t
}

func (t *table) shard(id string) *tableShard {
	return &t.shards[maphash.String(t.seed, id)%tableShards]
}

func (t *table) get(id string) *process {
	s := t.shard(id)
	s.mu.RLock()
	p := s.m[id]
	s.mu.RUnlock()
	return p
}

// add inserts p under id unless the id is taken.
func (t *table) add(id string, p *process) bool {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		return false
	}
	s.m[id] = p
	return true
}

// remove deletes id if it still maps to p.
func (t *table) remove(id string, p *process) {
	s := t.shard(id)
	s.mu.Lock()
	if s.m[id] == p {
		delete(s.m, id)
	}
	s.mu.Unlock()
}

func (t *table) all() []*process {
	var out []*process
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		for _, p := range s.m {
			out = append(out, p)
		}
		s.mu.RUnlock()
	}
	return out
}
