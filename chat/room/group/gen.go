package group

// The known-answer files testdata/keyschedule.json, testdata/commit.json
// and testdata/changes.json are written by their tests
// (TestKnownAnswersKeySchedule, TestKnownAnswersCommit and
// TestKnownAnswersChanges; testdata/README.md describes every field).
//go:generate go test -run ^TestKnownAnswers -update .
