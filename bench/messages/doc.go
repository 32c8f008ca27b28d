// Package messages holds the protobuf messages of protoactor-go's
// examples/remote-benchmark (Start, StartRemote, Ping, Pong), so that the
// protoactor candidate runs that example's shape with its own messages.
//
// protos.proto and protos.pb.go are copied unchanged from
// github.com/asynkron/protoactor-go, examples/remote-benchmark/messages
// (commit c318a5a07f4eb35610f09e80b88ff6b58064a0cb), Copyright the
// Proto.Actor authors, licensed under the Apache License 2.0. The example
// is a module of its own, so the protoactor-go module does not export it.
package messages
