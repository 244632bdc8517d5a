package harness

import "github.com/timguard/timguard/internal/redisproc"

// ErrNoRedis is returned when redis-server is not on PATH.
var ErrNoRedis = redisproc.ErrNotInstalled

// RedisOptions configure a private redis-server.
type RedisOptions struct {
	// Dir holds the server's files (log, append-only file). Required.
	Dir string
	// Persist turns on the append-only file with an fsync per write
	// (appendonly yes, appendfsync always), so that a killed server
	// restarted on the same Dir keeps every write it acknowledged.
	// Without it the server keeps nothing on disk.
	Persist bool
}

// Redis is a private redis-server that can be killed and started again on
// the same port. Its methods are safe for concurrent use.
type Redis = redisproc.Server

// StartRedis starts redis-server on a free port of 127.0.0.1.
func StartRedis(opts RedisOptions) (*Redis, error) {
	return redisproc.Start(opts.Dir, redisproc.Options{Persist: opts.Persist})
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) { return redisproc.FreePort() }
