// Package resilience holds the resilience suite: tests that build the real
// bot binary and run it as processes against a private redis-server and the
// fake IM server, send signed callbacks under load, break something in the
// middle (Redis stopped and restarted, the IM API failing 30% of calls, a
// replica killed with SIGKILL) and then compare the fake IM server's record
// with the audit log: every decided action done exactly once, nothing lost,
// every callback answered within the IM server's 2 s.
//
//	go test ./resilience                              # the short profile (CI)
//	TIMGUARD_RESILIENCE=long go test -v -timeout 20m ./resilience
//
// The tests need go (to build ./cmd/bot) and redis-server on PATH. Without
// them they are skipped, or fail when TIMGUARD_REQUIRE_REDIS=1 (CI).
package resilience
