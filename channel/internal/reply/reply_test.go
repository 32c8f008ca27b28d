package reply

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/remoting"
)

// answered returns p's answer, if one came.
func answered(p *Pending) (Answer, bool) {
	select {
	case a := <-p.Answer():
		return a, true
	default:
		return Answer{}, false
	}
}

func TestDeliver(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trying  string // the node the request was offered to ("": none)
		msg     remoting.Tagged
		from    string
		want    Answer
		wantAny bool
	}{
		{name: "an answer from its node", trying: "n2", msg: Message("c1", 42, nil), from: "n2",
			want: Answer{Value: 42}, wantAny: true},
		{name: "the handler's error", trying: "n2", msg: Message("c1", nil, errors.New("boom")), from: "n2",
			want: Answer{Err: "boom"}, wantAny: true},
		{name: "an error with no text", trying: "n2", msg: remoting.Tagged{Tag: []byte("Ec1")}, from: "n2",
			want: Answer{Err: "(no text)"}, wantAny: true},
		{name: "from another node: dropped", trying: "n2", msg: Message("c1", 42, nil), from: "n3"},
		{name: "before it was offered anywhere: dropped", msg: Message("c1", 42, nil), from: "n2"},
		{name: "another correlation: dropped", trying: "n2", msg: Message("c2", 42, nil), from: "n2"},
		{name: "a request's tag: dropped", trying: "n2", msg: remoting.Tagged{Tag: []byte("Cc1"), Value: 42}, from: "n2"},
		{name: "no tag: dropped", trying: "n2", msg: remoting.Tagged{Value: 42}, from: "n2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable()
			p := tb.Add("c1")
			if tc.trying != "" {
				p.Trying(tc.trying)
			}
			tb.Deliver(tc.msg, tc.from)
			a, ok := answered(p)
			require.Equal(t, tc.wantAny, ok, "answered")
			assert.Equal(t, tc.want, a)
			if ok {
				assert.Zero(t, tb.Len(), "an answered request waits no more")
			} else {
				assert.Equal(t, 1, tb.Len(), "an unanswered request still waits")
			}
		})
	}
}

// TestAnsweredOnce: a second answer, or one after Done, finds no request
// and never blocks.
func TestAnsweredOnce(t *testing.T) {
	tb := NewTable()
	p := tb.Add("c1")
	p.Trying("n2")
	tb.Deliver(Message("c1", 1, nil), "n2")
	tb.Deliver(Message("c1", 2, nil), "n2")
	a, ok := answered(p)
	require.True(t, ok)
	assert.Equal(t, 1, a.Value)
	_, ok = answered(p)
	assert.False(t, ok)

	q := tb.Add("c2")
	q.Trying("n2")
	q.Done()
	tb.Deliver(Message("c2", 3, nil), "n2")
	_, ok = answered(q)
	assert.False(t, ok)
	assert.Zero(t, tb.Len())
}

// TestAnswerFollowsTheLastOffer: a request refused by one node and offered
// to another is answered only by the second.
func TestAnswerFollowsTheLastOffer(t *testing.T) {
	tb := NewTable()
	p := tb.Add("c1")
	p.Trying("n2")
	p.Trying("n3")
	assert.Equal(t, "n3", p.Node())
	tb.Deliver(Message("c1", "from n2", nil), "n2")
	_, ok := answered(p)
	assert.False(t, ok)
	tb.Deliver(Message("c1", "from n3", nil), "n3")
	a, ok := answered(p)
	require.True(t, ok)
	assert.Equal(t, "from n3", a.Value)
}

// TestFailNode: only the requests the dead node accepted fail.
func TestFailNode(t *testing.T) {
	tb := NewTable()
	accepted := tb.Add("a")
	accepted.Trying("n2")
	accepted.Accepted()
	offered := tb.Add("o")
	offered.Trying("n2")
	elsewhere := tb.Add("e")
	elsewhere.Trying("n3")
	elsewhere.Accepted()
	reoffered := tb.Add("r")
	reoffered.Trying("n2")
	reoffered.Accepted()
	reoffered.Trying("n3") // accepted by n2 can't be: Trying starts over

	lostErr := errors.New("n2 was declared dead")
	tb.FailNode("n2", lostErr)
	for _, tc := range []struct {
		name string
		p    *Pending
		lost bool
	}{{"accepted", accepted, true}, {"only offered", offered, false}, {"on another node", elsewhere, false}, {"offered again elsewhere", reoffered, false}} {
		select {
		case err := <-tc.p.Lost():
			assert.True(t, tc.lost, "%s: failed", tc.name)
			assert.Equal(t, lostErr, err)
		default:
			assert.False(t, tc.lost, "%s: not failed", tc.name)
		}
	}
	assert.Equal(t, 3, tb.Len())
	tb.Deliver(Message("a", 1, nil), "n2")
	_, ok := answered(accepted)
	assert.False(t, ok, "a failed request takes no answer")
}
