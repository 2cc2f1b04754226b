package group

// The known-answer files testdata/keyschedule.json and testdata/commit.json
// are written by their tests (testdata/README.md describes every field).
//go:generate go test -run ^TestKnownAnswers -update .
