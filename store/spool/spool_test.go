package spool

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/timguard/timguard/store"
)

func commit(i int) store.CommitRequest {
	now := time.Date(2026, 11, 21, 12, 0, i, 0, time.UTC)
	id := fmt.Sprintf("ev%03d", i)
	return store.CommitRequest{
		Now: now, EventID: id, StrikeDecay: 24 * time.Hour,
		Strikes: []store.StrikeAdd{{UserRef: store.UserRef{Group: "@TGS#g", User: "eve"}, N: 1, ID: id + "/0/spam/1"}},
		Actions: []store.Action{{ID: id + "/0/mute/0", Kind: "mute", Group: "@TGS#g", GroupType: "Public", User: "eve",
			Seconds: 600, Rule: "mute", EventID: id, Roles: []string{"admin"}, Created: now, NotBefore: now.Add(time.Minute)}},
		Touch:     []store.CounterTouch{{Key: "budget|mute|@TGS#g", Window: time.Minute, Add: 1}},
		Decisions: []store.DecisionRecord{{Time: now, Group: "@TGS#g", User: "eve", Body: []byte(`{"kind":"decision"}`)}},
	}
}

func mustOpen(t testing.TB, dir string) (*Journal, []Entry) {
	t.Helper()
	j, entries, bad, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("entries that do not decode: %v", bad)
	}
	return j, entries
}

func TestCommitsKeptUntilRemovedAreReadBackInOrderAfterAReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, entries := mustOpen(t, dir)
	if len(entries) != 0 {
		t.Fatalf("a new journal holds %d entries", len(entries))
	}
	var ids []uint64
	for i := range 4 {
		id, err := j.Add(commit(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := j.Remove(ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}

	j, entries = mustOpen(t, dir)
	defer j.Close()
	want := []Entry{{ids[0], commit(0)}, {ids[2], commit(2)}, {ids[3], commit(3)}}
	if !reflect.DeepEqual(entries, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", entries, want)
	}
	id, err := j.Add(commit(9))
	if err != nil {
		t.Fatal(err)
	}
	if id <= ids[3] {
		t.Errorf("a new entry after the reopen has id %d, not above the kept %d", id, ids[3])
	}
}

func TestACommitReplacedByItsPartsIsInTheJournalOnce(t *testing.T) {
	dir := t.TempDir()
	j, _ := mustOpen(t, dir)
	whole, err := j.Add(commit(1))
	if err != nil {
		t.Fatal(err)
	}
	other, err := j.Add(commit(2))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := j.Replace(whole, commit(10), commit(11))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, entries := mustOpen(t, dir)
	defer j.Close()
	want := []Entry{{other, commit(2)}, {ids[0], commit(10)}, {ids[1], commit(11)}}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("after the replace: %+v, want the other commit and the two parts", entries)
	}
}

func TestOutcomesKeptUntilRemovedAreReadBackInOrderBesideTheCommits(t *testing.T) {
	dir := t.TempDir()
	j, _ := mustOpen(t, dir)
	if got := j.Outcomes(); len(got) != 0 {
		t.Fatalf("a new journal holds outcomes %v", got)
	}
	cid, err := j.Add(commit(1))
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i := range 3 {
		id, err := j.AddOutcome([]byte(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := j.RemoveOutcomes(ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j, entries := mustOpen(t, dir)
	defer j.Close()
	if len(entries) != 1 || entries[0].ID != cid {
		t.Errorf("commits read back %+v, want the one kept", entries)
	}
	want := []Outcome{{ids[1], []byte(`{"n":1}`)}, {ids[2], []byte(`{"n":2}`)}}
	if got := j.Outcomes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes read back %+v, want %+v", got, want)
	}
	id, err := j.AddOutcome([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if id <= ids[2] {
		t.Errorf("a new outcome after the reopen has id %d, not above the kept %d", id, ids[2])
	}
}

func TestConcurrentOutcomesShareTransactions(t *testing.T) {
	j, _, _, err := Open(t.TempDir(), Options{BatchDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, err := j.AddOutcome([]byte(`{"result":"done"}`)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if tx := j.transactions(); tx >= n {
		t.Errorf("%d concurrent AddOutcomes made %d transactions (fsyncs): none shared one", n, tx)
	}
}

func TestASecondProcessCannotUseTheSameStateDir(t *testing.T) {
	dir := t.TempDir()
	j, _ := mustOpen(t, dir)
	defer j.Close()
	_, _, _, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "another timguard process") {
		t.Fatalf("a second Open of a journal in use: %v, want an error naming another process", err)
	}
}

func TestConcurrentAddsShareTransactions(t *testing.T) {
	dir := t.TempDir()
	// A batch waits up to 200ms for company, far more than it takes to
	// start the goroutines, so that sharing does not depend on timing.
	j, _, _, err := Open(dir, Options{BatchDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := j.Add(commit(i)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tx := j.transactions()
	if tx >= n {
		t.Errorf("%d concurrent Adds made %d transactions (fsyncs): none shared one", n, tx)
	}
	t.Logf("%d Adds, %d transactions", n, tx)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, entries := mustOpen(t, dir)
	defer j.Close()
	if len(entries) != n {
		t.Errorf("%d entries read back, want %d", len(entries), n)
	}
}

func TestAnEntryThatDoesNotDecodeIsReportedAndRemoved(t *testing.T) {
	dir := t.TempDir()
	j, _ := mustOpen(t, dir)
	if _, err := j.Add(commit(1)); err != nil {
		t.Fatal(err)
	}
	if err := j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key(77), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, entries, bad, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || len(bad) != 1 || !strings.Contains(bad[0].Error(), "entry 77") {
		t.Fatalf("entries %+v, bad %v; want the good one and an error naming entry 77", entries, bad)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, entries, bad, err = Open(dir, Options{})
	if err != nil || len(entries) != 1 || len(bad) != 0 {
		t.Fatalf("after the bad entry was reported: %d entries, bad %v, %v", len(entries), bad, err)
	}
	j.Close()
}

func TestAnEmptyJournalLeftLargeStartsSmallAgain(t *testing.T) {
	dir := t.TempDir()
	j, _ := mustOpen(t, dir)
	var ids []uint64
	big := bytes.Repeat([]byte("x"), 1<<20)
	for i := range 6 {
		c := commit(i)
		c.Decisions[0].Body = big
		id, err := j.Add(c)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := j.Remove(ids...); err != nil {
		t.Fatal(err)
	}
	large := j.size()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if large <= compactAbove {
		t.Fatalf("the journal grew to %d bytes only; the test needs more than %d", large, compactAbove)
	}
	j, entries := mustOpen(t, dir)
	if len(entries) != 0 || j.size() >= large/4 {
		t.Errorf("reopened empty journal: %d entries, %d bytes (was %d)", len(entries), j.size(), large)
	}

	// An outcome waiting keeps the file as it is.
	for i := range 6 {
		c := commit(i)
		c.Decisions[0].Body = big
		id, err := j.Add(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.AddOutcome([]byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, _ = mustOpen(t, dir)
	defer j.Close()
	if got := len(j.Outcomes()); got != 1 {
		t.Errorf("a journal holding only an outcome was started again: %d outcomes read back, want 1", got)
	}
}

// BenchmarkAddParallel is the cost of keeping one commit on disk while the
// store is down, with callbacks arriving concurrently (group commit).
func BenchmarkAddParallel(b *testing.B) {
	j, _, _, err := Open(b.TempDir(), Options{BatchDelay: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	c := commit(1)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := j.Add(c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(max(j.transactions(), 1)), "adds/fsync")
}

// FuzzOpenReadsAnyEntry: whatever bytes an entry holds (a file from another
// version, a disk that lied), Open reads it back or reports it as bad; it
// never fails or panics because of it.
func FuzzOpenReadsAnyEntry(f *testing.F) {
	good, err := json.Marshal(record{V: recordVersion, Commit: commit(1)})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{good, []byte("{"), []byte(`{"v":2,"commit":{}}`), []byte(`{"v":1,"commit":{"Actions":[{"id":1}]}}`), nil, []byte("null")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		dir := t.TempDir()
		j, _ := mustOpen(t, dir)
		if err := j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key(1), value) }); err != nil {
			t.Skip("bbolt refuses the value:", err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		j, entries, bad, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open failed because of an entry: %v", err)
		}
		defer j.Close()
		if len(entries)+len(bad) != 1 {
			t.Fatalf("%d entries and %d bad for one value %q", len(entries), len(bad), value)
		}
	})
}
