//go:build !race

package app

// raceEnabled reports whether the tests run with the race detector; the
// process tests then build the bot with it too.
const raceEnabled = false
