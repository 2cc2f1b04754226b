package chat

// testdata/safety.json, the safety number known-answer file, is written by
// its test; chat/e2e/testdata/README.md describes it.
//go:generate go test -run ^TestKnownAnswersSafetyNumber$ -update .
