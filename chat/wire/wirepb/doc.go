// Package wirepb holds the Go types generated from Parley's wire contract,
// the .proto files in chat/wire/proto/parley/wire/v1 (protobuf package
// parley.wire.v1). Do not edit the .pb.go files: change the .proto files and
// run go generate in chat/wire. Size limits, framing and validation live in
// package chat/wire; decode through it, never with proto.Unmarshal alone.
package wirepb
