//go:build !race

package handlers

// raceEnabled reports whether the tests run under the race detector, which
// makes each callback several times slower.
const raceEnabled = false
