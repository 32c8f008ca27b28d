package reply

import (
	"sync"

	"github.com/dchan-io/dchan/remoting"
)

// An answer's tag begins with its kind; the rest is its request's
// correlation. (channel's requests are tagged 'C'.)
const (
	tagAnswer = 'A' // the handler's result, the Value
	tagError  = 'E' // the handler's error, the Value its text
)

// Message is how an answer travels: v, or herr's text, tagged with the
// request's correlation corr.
func Message(corr string, v any, herr error) remoting.Tagged {
	if herr != nil {
		return remoting.Tagged{Tag: append([]byte{tagError}, corr...), Value: herr.Error()}
	}
	return remoting.Tagged{Tag: append([]byte{tagAnswer}, corr...), Value: v}
}

// Answer is what a requester gets back: the handler's result, or the text
// of its error (Err != "").
type Answer struct {
	Value any
	Err   string
}

// Table is a node's pending requests, by correlation. The zero Table is
// not ready: use NewTable.
type Table struct {
	mu      sync.Mutex
	pending map[string]*Pending
}

// NewTable returns an empty Table.
func NewTable() *Table { return &Table{pending: make(map[string]*Pending)} }

// Pending is one request waiting for its answer.
type Pending struct {
	t        *Table
	corr     string
	answer   chan Answer // capacity 1
	lost     chan error  // capacity 1: its node was declared dead
	node     string      // where the request was offered last; guarded by t.mu
	accepted bool        // node accepted it: only its answer can end it now; guarded by t.mu
}

// Add makes a request with correlation corr wait for its answer, until
// Done.
func (t *Table) Add(corr string) *Pending {
	p := &Pending{t: t, corr: corr, answer: make(chan Answer, 1), lost: make(chan error, 1)}
	t.mu.Lock()
	t.pending[corr] = p
	t.mu.Unlock()
	return p
}

// Len returns how many requests wait.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Deliver hands the answer m, from node from, to the request it answers,
// if that still waits and went to from: the node a request went to is the
// only one whose answer completes it. Anything else is dropped: an answer
// from another node, to no waiting request, or not an answer at all.
func (t *Table) Deliver(m remoting.Tagged, from string) {
	if len(m.Tag) == 0 || (m.Tag[0] != tagAnswer && m.Tag[0] != tagError) {
		return
	}
	var a Answer
	if m.Tag[0] == tagError {
		a.Err, _ = m.Value.(string)
		if a.Err == "" {
			a.Err = "(no text)"
		}
	} else {
		a.Value = m.Value
	}
	t.mu.Lock()
	p := t.pending[string(m.Tag[1:])]
	if p != nil && p.node != from {
		p = nil // not from the node the request went to
	}
	if p != nil {
		delete(t.pending, p.corr)
	}
	t.mu.Unlock()
	if p != nil {
		p.answer <- a // capacity 1, one answer per correlation: never blocks
	}
}

// FailNode fails, with err, the requests node accepted: the cluster
// declared it dead, and their answers will not come. A request only
// offered to node (its acceptance not come yet) is left to fail through
// its outcome: its stream to node fails; and one node refused has gone on
// to another receiver.
func (t *Table) FailNode(node string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for corr, p := range t.pending {
		if p.node == node && p.accepted {
			delete(t.pending, corr)
			p.lost <- err // capacity 1: never blocks
		}
	}
}

// Trying notes that the request is offered to node, which has not
// accepted it yet.
func (p *Pending) Trying(node string) {
	p.t.mu.Lock()
	p.node, p.accepted = node, false
	p.t.mu.Unlock()
}

// Accepted notes that the node it was offered to last accepted it.
func (p *Pending) Accepted() {
	p.t.mu.Lock()
	p.accepted = true
	p.t.mu.Unlock()
}

// Node returns the node the request was offered to last.
func (p *Pending) Node() string {
	p.t.mu.Lock()
	defer p.t.mu.Unlock()
	return p.node
}

// Answer receives the request's answer, once.
func (p *Pending) Answer() <-chan Answer { return p.answer }

// Lost receives the error of FailNode, if the request's node is declared
// dead after accepting it.
func (p *Pending) Lost() <-chan error { return p.lost }

// Done stops the request's wait: a later answer is dropped.
func (p *Pending) Done() {
	p.t.mu.Lock()
	if p.t.pending[p.corr] == p {
		delete(p.t.pending, p.corr)
	}
	p.t.mu.Unlock()
}
