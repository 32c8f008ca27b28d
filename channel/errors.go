package channel

import (
	"errors"
	"fmt"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/route"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
)

var (
	// ErrClosed: the Node, or the channel, is closed.
	ErrClosed = errors.New("channel: closed")
	// ErrTimeout: a Message's timeout passed before a receiver accepted it.
	ErrTimeout = errors.New("channel: timed out")
	// ErrNoReceivers: the value was not delivered because the name had no
	// receiver until the deadline.
	ErrNoReceivers = errors.New("channel: no receivers")
	// ErrInvalidName: a channel name is empty or too long.
	ErrInvalidName = errors.New("channel: invalid name")
	// ErrInvalidOption: an option or argument is out of range.
	ErrInvalidOption = errors.New("channel: invalid option")
	// ErrPending: Message.Err before the outcome is known.
	ErrPending = errors.New("channel: outcome pending")
	// ErrWrongType: a value of another type than a typed receiver takes
	// (ReceiveOf refuses it before accepting it), or than a request or its
	// answer should be.
	ErrWrongType = errors.New("channel: value of the wrong type")

	// ErrGone: SendTo's Ref names a receiver that is closed, or whose node
	// has restarted or is no longer a member.
	ErrGone = errors.New("channel: receiver gone")
	// ErrHandler: the Serve handler that took a request returned an error;
	// its text follows.
	ErrHandler = errors.New("channel: the responder's handler failed")

	// ErrNodeLost: the receiver's node was lost while the value was in
	// flight. The value may or may not have been delivered; it is never
	// delivered twice.
	ErrNodeLost = remoting.ErrNodeLost
	// ErrEncode: the value could not be encoded (its type is not registered
	// with WithTypes, or the codec cannot represent it).
	ErrEncode = remoting.ErrEncode
	// ErrTooLarge: the encoded value exceeds the maximum message size.
	ErrTooLarge = remoting.ErrTooLarge
	// ErrAdvertiseAddr: the node listens on every interface and the host
	// has no single address to advertise to peers (none, or several; the
	// error names them). Set WithAdvertiseAddr.
	ErrAdvertiseAddr = remoting.ErrAdvertiseAddr
	// ErrUnavailable: the registry could not commit or confirm in time —
	// no leader answered (this node is cut off from a quorum, or the
	// cluster is electing one).
	ErrUnavailable = registry.ErrUnavailable
)

// errNilMessage fails a nil *Message written to a send channel.
var errNilMessage = fmt.Errorf("%w: a nil *Message", ErrInvalidOption)

// wrongType makes a refusal by a typed receiver's filter (actor.ErrRejected,
// which crosses nodes without its Go error chain) match ErrWrongType.
func wrongType(err error) error {
	if errors.Is(err, actor.ErrRejected) && !errors.Is(err, ErrWrongType) {
		return fmt.Errorf("%w: %w", ErrWrongType, err)
	}
	return err
}

// refused reports an error that proves the value was not accepted (the
// receiver had gone or was stopping), so it may go to another receiver
// without risking a duplicate.
func refused(err error) bool { return route.Refused(err) }
