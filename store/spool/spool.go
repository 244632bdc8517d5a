// Package spool keeps, on local disk, the store commits a process made
// while the shared store could not take them (Redis down, full or too
// slow), so that a process killed before the store came back loses none of
// the decisions it had answered for: at the next start they are read back
// and committed then. It also keeps the outcomes of actions the executor
// carried out while the store could not record them (done, dead-lettered),
// so that neither this process nor the next one on the same state
// directory carries them out again: they are recorded in the store before
// the next claim.
//
// The journal is a bbolt file, spool.db, in the state directory. Add returns
// once the commit is on disk (written and fsynced); concurrent Adds share
// one transaction and one fsync (bbolt's Batch: group commit), so that a
// burst of callbacks during an outage costs a few fsyncs, not one each.
// Outcomes are kept the same way (AddOutcome). Nothing touches the file
// while the store takes every commit and every outcome. One process
// at a time may use a state directory: the file is locked while open.
package spool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/timguard/timguard/store"
)

// FileName is the journal's file in the state directory.
const FileName = "spool.db"

// bucket holds the commits, keyed by their id (8 bytes, big-endian).
var bucket = []byte("commits")

// outcomeBucket holds the executor's outcomes, keyed by their id (8 bytes,
// big-endian); the values are the executor's own encoding.
var outcomeBucket = []byte("outcomes")

// compactAbove is the size above which an empty journal file is replaced
// by a new one at Open: bbolt reuses freed pages but never shrinks its file.
const compactAbove = 4 << 20

// lockWait is how long Open waits for another process's lock on the file.
const lockWait = time.Second

// Options tune a Journal; zero values take the defaults.
type Options struct {
	// BatchDelay is the longest an Add waits for others to share its
	// transaction and fsync (bbolt's MaxBatchDelay). Default 10ms.
	BatchDelay time.Duration
}

// Journal is the on-disk spool. It is safe for concurrent use.
type Journal struct {
	db          *bolt.DB
	path        string
	next        atomic.Uint64 // the id the next Add takes
	nextOutcome atomic.Uint64 // the id the next AddOutcome takes
	outcomes    []Outcome     // read at Open, for Outcomes

	// txMu and lastTx count the write transactions (group commits), for
	// tests and benchmarks.
	txMu    sync.Mutex
	lastTx  *bolt.Tx
	commits int
}

// Entry is one commit kept in the journal.
type Entry struct {
	ID     uint64
	Commit store.CommitRequest
}

// Outcome is an action outcome kept in the journal. Data is the executor's
// encoding of it, which the journal does not read.
type Outcome struct {
	ID   uint64
	Data []byte
}

// record is an entry's value in the file.
type record struct {
	V      int                 `json:"v"`
	Commit store.CommitRequest `json:"commit"`
}

const recordVersion = 1

// Open opens (or creates) the journal in dir, creating dir (0700) when it
// does not exist, and returns the commits it holds, oldest first. Entries
// that do not decode are removed and returned as errors in bad; they
// cannot be committed. Open fails when another process holds the journal.
func Open(dir string, opts Options) (j *Journal, entries []Entry, bad []error, err error) {
	if dir == "" {
		return nil, nil, nil, errors.New("spool: no state directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("spool: state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	j, entries, bad, err = open(path, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(entries) == 0 && len(j.outcomes) == 0 && j.size() > compactAbove {
		// Nothing waits: start again with a small file.
		if err := j.db.Close(); err != nil {
			return nil, nil, nil, fmt.Errorf("spool: close %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, nil, nil, fmt.Errorf("spool: remove the empty journal %s: %w", path, err)
		}
		j, _, _, err = open(path, opts)
		if err != nil {
			return nil, nil, nil, err
		}
	}
	return j, entries, bad, nil
}

func open(path string, opts Options) (*Journal, []Entry, []error, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, nil, nil, fmt.Errorf("spool: %s is locked: another timguard process uses this state_dir", path)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	db.MaxBatchDelay = 10 * time.Millisecond
	if opts.BatchDelay > 0 {
		db.MaxBatchDelay = opts.BatchDelay
	}
	j := &Journal{db: db, path: path}
	var entries []Entry
	var bad []error
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		var drop [][]byte
		err = b.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				bad = append(bad, fmt.Errorf("spool: key %x is not an id", k))
				drop = append(drop, k)
				return nil
			}
			id := binary.BigEndian.Uint64(k)
			var r record
			if err := json.Unmarshal(v, &r); err != nil || r.V != recordVersion {
				bad = append(bad, fmt.Errorf("spool: entry %d does not decode (version %d): %w", id, r.V, err))
				drop = append(drop, k)
				return nil
			}
			entries = append(entries, Entry{ID: id, Commit: r.Commit})
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		ob, err := tx.CreateBucketIfNotExists(outcomeBucket)
		if err != nil {
			return err
		}
		drop = drop[:0]
		err = ob.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				bad = append(bad, fmt.Errorf("spool: outcome key %x is not an id", k))
				drop = append(drop, k)
				return nil
			}
			j.outcomes = append(j.outcomes, Outcome{ID: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v...)})
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := ob.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, nil, nil, fmt.Errorf("spool: read %s: %w", path, err)
	}
	last := uint64(0)
	if len(entries) > 0 {
		last = entries[len(entries)-1].ID // ForEach visits keys in order
	}
	j.next.Store(last + 1)
	last = 0
	if len(j.outcomes) > 0 {
		last = j.outcomes[len(j.outcomes)-1].ID
	}
	j.nextOutcome.Store(last + 1)
	return j, entries, bad, nil
}

// Outcomes returns the outcomes the journal held when it was opened,
// oldest first.
func (j *Journal) Outcomes() []Outcome { return j.outcomes }

// AddOutcome writes an outcome (data, in the caller's encoding) to the
// journal and returns its id once it is on disk. Concurrent calls share
// one transaction and one fsync, as Add's do.
func (j *Journal) AddOutcome(data []byte) (uint64, error) {
	id := j.nextOutcome.Add(1) - 1
	k := key(id)
	err := j.db.Batch(func(tx *bolt.Tx) error {
		j.counted(tx)
		return tx.Bucket(outcomeBucket).Put(k, data)
	})
	if err != nil {
		return 0, fmt.Errorf("spool: write an outcome to %s: %w", j.path, err)
	}
	return id, nil
}

// RemoveOutcomes deletes the outcomes with ids (the store took them, or
// they were given up), in one transaction.
func (j *Journal) RemoveOutcomes(ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	err := j.db.Batch(func(tx *bolt.Tx) error {
		j.counted(tx)
		b := tx.Bucket(outcomeBucket)
		for _, id := range ids {
			if err := b.Delete(key(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool: remove %d outcomes from %s: %w", len(ids), j.path, err)
	}
	return nil
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

func (j *Journal) size() int64 {
	fi, err := os.Stat(j.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func key(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// Add writes c to the journal and returns its id once it is on disk.
func (j *Journal) Add(c store.CommitRequest) (uint64, error) {
	v, err := json.Marshal(record{V: recordVersion, Commit: c})
	if err != nil {
		return 0, fmt.Errorf("spool: encode commit of %s: %w", c.EventID, err)
	}
	id := j.next.Add(1) - 1
	k := key(id)
	err = j.db.Batch(func(tx *bolt.Tx) error {
		j.counted(tx)
		return tx.Bucket(bucket).Put(k, v)
	})
	if err != nil {
		return 0, fmt.Errorf("spool: write commit of %s to %s: %w", c.EventID, j.path, err)
	}
	return id, nil
}

// Replace puts parts in the place of the entry old, in one transaction,
// and returns the parts' ids: a commit split in pieces is never in the
// journal twice, nor missing.
func (j *Journal) Replace(old uint64, parts ...store.CommitRequest) ([]uint64, error) {
	values := make([][]byte, len(parts))
	for i, c := range parts {
		v, err := json.Marshal(record{V: recordVersion, Commit: c})
		if err != nil {
			return nil, fmt.Errorf("spool: encode commit of %s: %w", c.EventID, err)
		}
		values[i] = v
	}
	ids := make([]uint64, len(parts))
	for i := range ids {
		ids[i] = j.next.Add(1) - 1
	}
	err := j.db.Update(func(tx *bolt.Tx) error {
		j.counted(tx)
		b := tx.Bucket(bucket)
		for i, v := range values {
			if err := b.Put(key(ids[i]), v); err != nil {
				return err
			}
		}
		return b.Delete(key(old))
	})
	if err != nil {
		return nil, fmt.Errorf("spool: replace entry %d of %s: %w", old, j.path, err)
	}
	return ids, nil
}

// Remove deletes the entries with ids (the store took them, or they were
// given up), in one transaction.
func (j *Journal) Remove(ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	err := j.db.Batch(func(tx *bolt.Tx) error {
		j.counted(tx)
		b := tx.Bucket(bucket)
		for _, id := range ids {
			if err := b.Delete(key(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool: remove %d entries from %s: %w", len(ids), j.path, err)
	}
	return nil
}

// counted notes tx as a write transaction (once, however many calls of a
// batch run in it).
func (j *Journal) counted(tx *bolt.Tx) {
	j.txMu.Lock()
	defer j.txMu.Unlock()
	if tx != j.lastTx {
		j.lastTx = tx
		j.commits++
	}
}

// transactions returns how many write transactions (each one fsync of the
// file) the journal made since Open.
func (j *Journal) transactions() int {
	j.txMu.Lock()
	defer j.txMu.Unlock()
	return j.commits
}

// Close closes the file and releases its lock.
func (j *Journal) Close() error {
	if err := j.db.Close(); err != nil {
		return fmt.Errorf("spool: close %s: %w", j.path, err)
	}
	return nil
}
