package console

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/timguard/timguard/audit"
)

// LineWriter takes encoded audit records (audit.Writer implements it).
type LineWriter interface {
	WriteLine(line []byte)
}

// ActionResults passes audit records on to the audit writer and keeps the
// latest result of the last actions this process carried out, so that the
// decisions page can say what became of each action. Put it between the
// executor and the audit writer.
type ActionResults struct {
	next LineWriter
	max  int

	mu    sync.Mutex
	byID  map[string]actionResult
	order []string
}

// actionResult is the last audit record of one action.
type actionResult struct {
	Result  string    `json:"result"`
	Error   string    `json:"error"`
	Attempt int       `json:"attempt"`
	Time    time.Time `json:"time"`
}

// NewActionResults keeps the results of the last limit actions (10,000
// when limit is 0) and writes every record to next.
func NewActionResults(next LineWriter, limit int) *ActionResults {
	if limit <= 0 {
		limit = 10000
	}
	return &ActionResults{next: next, max: limit, byID: map[string]actionResult{}}
}

// WriteLine writes line to the audit writer and, when it is an action
// record, keeps its result, which it decodes from line.
func (a *ActionResults) WriteLine(line []byte) {
	a.next.WriteLine(line)
	if !bytes.Contains(line, []byte(`"kind":"action"`)) {
		return
	}
	var rec struct {
		actionResult
		Actions []struct {
			ID string `json:"id"`
		} `json:"actions"`
	}
	if err := json.Unmarshal(line, &rec); err != nil || len(rec.Actions) != 1 {
		return
	}
	a.keep(rec.Actions[0].ID, rec.actionResult)
}

// WriteRecord writes line, which encodes rec, to the audit writer and, when
// rec is an action record, keeps its result without decoding line (the
// executor calls it: actions.RecordSink).
func (a *ActionResults) WriteRecord(rec *audit.Record, line []byte) {
	a.next.WriteLine(line)
	if rec.Kind != audit.KindAction || len(rec.Actions) != 1 {
		return
	}
	a.keep(rec.Actions[0].ID, actionResult{Result: rec.Result, Error: rec.Error, Attempt: rec.Attempt, Time: rec.Time})
}

// keep remembers the result of the action id, forgetting the oldest action
// beyond the limit.
func (a *ActionResults) keep(id string, r actionResult) {
	if id == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.byID[id]; !ok {
		a.order = append(a.order, id)
		if len(a.order) > a.max {
			delete(a.byID, a.order[0])
			a.order = a.order[1:]
		}
	}
	a.byID[id] = r
}

// lookup returns the last result seen of the action id.
func (a *ActionResults) lookup(id string) (actionResult, bool) {
	if a == nil {
		return actionResult{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.byID[id]
	return r, ok
}
