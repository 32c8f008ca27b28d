// Package remoting moves actor messages between dchan nodes over gRPC.
//
// An Endpoint is a node's network presence: one gRPC server on one listen
// address, and one client connection per peer address. Actor messages and
// Raft (package raftrpc, registered through Registrar) share both: there is
// no second port and no connection per channel or actor. gRPC re-dials a
// broken connection with exponential backoff, capped at a second.
//
//	ep, err := remoting.New(sys, remoting.WithListenAddr("127.0.0.1:0"), remoting.WithResolver(r))
//	sys.SetRemote(ep)      // sends to other nodes' PIDs now go through ep
//	err = ep.Start()       // serve; ep.Addr() is the bound address
//	defer ep.Close()
//
// # Streams
//
// Each Endpoint opens one long-lived Messages stream per peer. A send takes
// its credit (below), lets the codec check the value (Checker: an
// unregistered type fails Send at once with ErrEncode) and queues it; the
// order of sends is the order on the wire. A writer goroutine takes the
// whole queue, encodes it and sends it as one gRPC message (or several of
// at most about 1 MiB): a lone message leaves at once (there is no timer),
// messages that queue up while the writer works travel together.
// Consecutive messages to one target from one sender, with values of one
// type, go as one run record when the codec has a RunEncoder — GobCodec
// encodes the run as one gob slice, a third of the cost per value of
// encoding them one by one, or a flat struct's values back to back.
// Records are framed by package internal/wire.
//
// # Flow control
//
// Credit is per link: one stream, one target actor. The first message to a
// target asks for credit; the receiver grants the target's free mailbox
// space, raised to WithMinWindow (default 0) and to at least 1, and capped
// at WithMaxWindow. Each message takes one credit; with none left the
// sender blocks, honouring its ctx. The receiver returns credit only when a
// message is accepted into the mailbox: if the mailbox is full (a window
// raised by WithMinWindow may exceed it), the message waits in the link's
// overflow queue (never longer than the window) and a deliverer goroutine
// pushes it when space frees. So a slow receiver stops its senders and
// nothing buffers without bound. Credit returns travel back on the same
// stream and double as acknowledgements: SendTracked's callback reports
// acceptance, a refusal (actor.ErrNotFound, actor.ErrStopped — sentinels
// survive the wire) or ErrNodeLost. The receiver acknowledges a SendTracked
// message with the frame it arrived in; others (Send, SendMany) it
// acknowledges in batches, an eighth of the window or AckDelay at the
// latest, sparing a frame per message when they are sparse. Messages are
// never resent: delivery is at most once.
//
// # Codecs
//
// A Codec turns message values into bytes and back. Each stream between two
// nodes gets its own Encoder and Decoder, which see that stream's values in
// order and may keep state across them. GobCodec, the default, keeps one
// gob encoder and decoder per stream, so a type's description crosses the
// wire once per stream rather than once per message. It sends flat struct
// types (exported fields all bools, integers, floats, strings or []byte;
// no embedded fields, no custom encoding or decoding methods) without gob,
// at a quarter to a third of gob's cost, and they decode exactly as gob
// would decode them: the same Go value, or an error where gob fails, also
// across versions of a type; every other type goes through gob, and every
// GobCodec reads both kinds of frame. A value that cannot be encoded fails
// alone with ErrEncode; a value over the maximum message size fails alone
// with ErrTooLarge; bytes that cannot be decoded fail their stream with
// ErrDecode, and only that stream is reopened. Failures the codec's
// Checker cannot foresee (a GobEncode method's error, a value over the
// size limit) are found by the writer, after Send has returned: they
// reach the message's completion (SendTracked), or the actor system's dead
// letters if nobody tracks it.
//
// # Security
//
// WithTLS secures every connection (mutual TLS when the server config
// requires client certificates); WithToken makes every RPC and stream carry
// a shared secret, checked before any handler runs, Raft's included. A peer
// failing either is refused with codes.Unauthenticated and logged.
//
// # Goroutines
//
//   - the gRPC server's, started by Start and stopped by Close;
//   - per outgoing stream: a writer and a reader, ended when the stream
//     fails or the Endpoint closes (Close waits for them);
//   - per incoming stream: gRPC's handler goroutine, a writer for credits,
//     and one deliverer per link while its overflow is not empty; the
//     handler waits for the others before it returns, and Close waits for
//     every handler.
package remoting
