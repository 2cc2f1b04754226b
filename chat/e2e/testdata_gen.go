package e2e

// The known-answer files in testdata are written by the tests that check
// them; testdata/README.md describes every field. go generate rewrites them
// all (review the diff: a change is a change of the protocol).

//go:generate go test -run "^Test(KnownAnswers|KnownAnswersX3DHResponder|KnownAnswersPQXDH|KnownAnswersHandshake|Transcript|TranscriptPQ)$" -update .
