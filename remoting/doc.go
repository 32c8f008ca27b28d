// Package remoting moves actor messages between dchan nodes over gRPC.
//
// # Codecs
//
// A Codec turns message values into bytes and back. Each stream between two
// nodes gets its own Encoder and Decoder, which see that stream's values in
// order and may keep state across them. GobCodec, the default, keeps one
// gob encoder and decoder per stream, so a type's description crosses the
// wire once per stream rather than once per message. A value that cannot
// be encoded fails alone with ErrEncode; bytes that cannot be decoded fail
// their stream with ErrDecode, and only that stream is reopened.
package remoting
