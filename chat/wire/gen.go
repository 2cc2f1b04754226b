package wire

// The generated code in wirepb is committed; CI does not regenerate it. To
// regenerate after editing a .proto file, install protoc and
// protoc-gen-go v1.36.12, then run go generate in this directory.

//go:generate protoc -I proto --go_out=. --go_opt=module=github.com/parley-im/parley/chat/wire proto/parley/wire/v1/dm.proto proto/parley/wire/v1/prekeys.proto proto/parley/wire/v1/room.proto proto/parley/wire/v1/mailbox.proto proto/parley/wire/v1/invite.proto proto/parley/wire/v1/room2.proto

// The link known-answer file testdata/links.json is written by its test.
//go:generate go test -run ^TestKnownAnswersLinks$ -update .
