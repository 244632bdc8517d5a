package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/test/harness"
	"github.com/timguard/timguard/tim/timtest"
)

// report is what loadgen prints.
type report struct {
	Time    time.Time `json:"time"`
	Machine machine   `json:"machine"`
	Mix     mixInfo   `json:"mix"`
	Runs    []runInfo `json:"runs"`
	// Ratio is the bot's throughput over the bare handler's in the closed
	// loop (0 when either did not run).
	Ratio   float64  `json:"throughput_ratio,omitempty"`
	Targets []target `json:"targets"`
	Note    string   `json:"note"`

	rate float64
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	MemoryGiB string `json:"memory_gib,omitempty"`
	OS        string `json:"os"`
	Go        string `json:"go"`
	Redis     string `json:"redis,omitempty"`
	// LoadAverage is the 1-minute load average before loadgen started
	// anything: well above 0, other work shared the CPUs with the run.
	LoadAverage string `json:"load_average_before,omitempty"`
}

type mixInfo struct {
	Shares map[string]float64 `json:"shares_percent"`
	Groups int                `json:"groups"`
	Users  int                `json:"users"`
	Seed   uint64             `json:"seed"`
}

type runInfo struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	*harness.Stats
	// CPU is how busy the machine was during the run (Linux).
	CPU     *cpuUse  `json:"cpu,omitempty"`
	Actions *actions `json:"actions,omitempty"`
}

// cpuUse is the machine's CPU use over a run, in percent of all its CPUs:
// Busy is everything but idle and I/O wait; Others is the part of it used
// by processes other than loadgen's (the generator, the bot, Redis, the
// bare handler): well above 0, other work skewed the run; Steal is time the
// hypervisor gave to other guests (on a virtual machine, latency the guest
// cannot help).
type cpuUse struct {
	Busy   float64 `json:"busy_percent"`
	Others float64 `json:"others_percent"`
	Steal  float64 `json:"steal_percent"`
}

// cpuTimes are the counters of the first line of /proc/stat, and the time
// loadgen's own processes used.
type cpuTimes struct {
	total, idle, steal, ours uint64
	pids                     []int
}

// readCPU reads /proc/stat and the times of pids; ok is false elsewhere
// than on Linux.
func readCPU(pids ...int) (cpuTimes, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, false
	}
	var t cpuTimes
	for i, v := range f[1:] {
		var n uint64
		if _, err := fmt.Sscan(v, &n); err != nil {
			return cpuTimes{}, false
		}
		t.total += n
		switch i {
		case 3, 4: // idle, iowait
			t.idle += n
		case 7:
			t.steal = n
		}
	}
	t.pids = pids
	for _, pid := range pids {
		t.ours += processTicks(pid)
	}
	return t, true
}

// processTicks is the user and system time of a process, in clock ticks
// (the unit of /proc/stat).
func processTicks(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	var utime, stime uint64
	_, _ = fmt.Sscan(f[11], &utime)
	_, _ = fmt.Sscan(f[12], &stime)
	return utime + stime
}

// since returns the CPU use from before to now.
func (before cpuTimes) since() *cpuUse {
	now, ok := readCPU(before.pids...)
	if !ok || now.total <= before.total {
		return nil
	}
	d := float64(now.total - before.total)
	busy := d - float64(now.idle-before.idle)
	ours := float64(now.ours - min(before.ours, now.ours))
	return &cpuUse{
		Busy:   100 * busy / d,
		Others: 100 * max(busy-ours, 0) / d,
		Steal:  100 * float64(now.steal-before.steal) / d,
	}
}

// actions are what a bot run decided and what the fake IM server received.
type actions struct {
	// Decided counts the actions decision records planned (with an id),
	// by kind; Results counts action records by result.
	Decided map[string]int `json:"decided"`
	Results map[string]int `json:"results"`
	// Calls counts the REST calls the fake IM server received, by command;
	// Effective those it carried out.
	Calls     map[string]int `json:"rest_calls"`
	Effective int            `json:"rest_calls_effective"`
	Strikes   int            `json:"strikes"`
	// Unsettled says what the executor had not finished two minutes after
	// the run, if anything.
	Unsettled string `json:"unsettled,omitempty"`
}

type target struct {
	What  string `json:"what"`
	Value string `json:"value"`
	Met   bool   `json:"met"`
}

const note = "The load generator, the bot, redis-server, the bare handler and the fake IM server all run on this machine and share its CPUs."

func newReport(o *options, m *harness.Mix) *report {
	r := &report{
		Time: time.Now().UTC().Truncate(time.Second),
		Machine: machine{
			CPUs: runtime.NumCPU(), CPUModel: cpuModel(), MemoryGiB: memory(),
			OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), LoadAverage: loadAverage(),
		},
		Mix:  mixInfo{Shares: map[string]float64{}, Groups: m.Groups, Users: m.Users, Seed: m.Seed},
		Note: note,
		rate: o.rate,
	}
	for c, s := range m.Shares {
		if s > 0 {
			r.Mix.Shares[harness.Class(c).String()] = float64(s) / 100
		}
	}
	return r
}

func (r *report) addRun(who string, l harness.Load, st *harness.Stats, cpu *cpuUse, a *actions) {
	name := fmt.Sprintf("closed %d workers", l.Workers)
	if l.Rate > 0 {
		name = fmt.Sprintf("open %g/s", l.Rate)
	}
	r.Runs = append(r.Runs, runInfo{Name: name, Target: who, Stats: st, CPU: cpu, Actions: a})
}

// find returns the run of target in mode.
func (r *report) find(who, mode string) *runInfo {
	for i := range r.Runs {
		if r.Runs[i].Target == who && r.Runs[i].Mode == mode {
			return &r.Runs[i]
		}
	}
	return nil
}

// finish computes the ratio and checks the targets of DESIGN.md.
func (r *report) finish() {
	if open := r.find("bot", "open"); open != nil {
		ok := open.Latency.P99 < 5*time.Millisecond && open.Errors == 0 && open.Non2xx == 0 && open.BadEnvelope == 0 &&
			open.Throughput >= 0.99*r.rate
		what := "p99 < 5 ms at 2,000 callbacks/s, every callback answered"
		if r.rate < 2000 {
			what += fmt.Sprintf(" (this run: %g/s, so the target is not measured)", r.rate)
		}
		r.Targets = append(r.Targets, target{
			What:  what,
			Value: fmt.Sprintf("p99 %s at %g/s, %d of %d answered", ms(open.Latency.P99), r.rate, open.Answered, open.Sent),
			Met:   ok && r.rate >= 2000,
		})
	}
	bot, bare := r.find("bot", "closed"), r.find("bare", "closed")
	if bot != nil && bare != nil && bare.Throughput > 0 {
		r.Ratio = bot.Throughput / bare.Throughput
		r.Targets = append(r.Targets, target{
			What:  "throughput at least half of a bare gin handler's, in one run",
			Value: fmt.Sprintf("%.0f/s vs %.0f/s = %.2f", bot.Throughput, bare.Throughput, r.Ratio),
			Met:   r.Ratio >= 0.5,
		})
	}
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	m := r.Machine
	fmt.Fprintf(bw, "timguard load test, %s\n", r.Time.Format(time.RFC3339))
	fmt.Fprintf(bw, "machine: %d CPUs", m.CPUs)
	if m.CPUModel != "" {
		fmt.Fprintf(bw, " (%s)", m.CPUModel)
	}
	if m.MemoryGiB != "" {
		fmt.Fprintf(bw, ", %s GiB", m.MemoryGiB)
	}
	fmt.Fprintf(bw, ", %s, %s", m.OS, m.Go)
	if m.Redis != "" {
		fmt.Fprintf(bw, ", Redis %s", m.Redis)
	}
	if m.LoadAverage != "" {
		fmt.Fprintf(bw, "; load average %s before the run", m.LoadAverage)
	}
	fmt.Fprintf(bw, "\nnote: %s\n", r.Note)
	var shares []string
	for _, c := range []string{"message", "spam", "flood", "message_sent", "join_request", "joined", "quit", "kicked"} {
		if s, ok := r.Mix.Shares[c]; ok {
			shares = append(shares, fmt.Sprintf("%s %g%%", c, s))
		}
	}
	fmt.Fprintf(bw, "mix: %s; %d groups, %d users, seed %d\n", strings.Join(shares, ", "), r.Mix.Groups, r.Mix.Users, r.Mix.Seed)
	fmt.Fprintf(bw, "latency: from each request's scheduled send time (open loop) or its send time (closed loop) to the last byte of the answer;\n")
	fmt.Fprintf(bw, "pacer lag: how late the generator released requests; CPU: the whole machine during the run, in %% of all CPUs:\n")
	fmt.Fprintf(bw, "busy, of which other processes than loadgen's (other work that skewed the run), and steal (the hypervisor's)\n\n")

	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\ttarget\tsent\tanswered\terrors\tnon-2xx\tbad envelope\trefused\tthroughput/s\tp50\tp90\tp99\tp99.9\tmax\tpacer lag p99\tCPU busy\tother procs\tsteal\t")
	for _, run := range r.Runs {
		lag := "-"
		if run.Mode == "open" {
			lag = ms(run.PacerLag.P99)
		}
		busy, others, steal := "-", "-", "-"
		if run.CPU != nil {
			busy, others, steal = fmt.Sprintf("%.0f%%", run.CPU.Busy), fmt.Sprintf("%.0f%%", run.CPU.Others), fmt.Sprintf("%.1f%%", run.CPU.Steal)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			run.Name, run.Target, run.Sent, run.Answered, run.Errors, run.Non2xx, run.BadEnvelope, run.Refused,
			run.Throughput, ms(run.Latency.P50), ms(run.Latency.P90), ms(run.Latency.P99), ms(run.Latency.P999), ms(run.Latency.Max), lag,
			busy, others, steal)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, run := range r.Runs {
		if run.FirstError != "" {
			fmt.Fprintf(bw, "first error (%s, %s): %s\n", run.Name, run.Target, run.FirstError)
		}
	}
	if r.Ratio > 0 {
		fmt.Fprintf(bw, "\nthroughput bot / bare handler (closed loop): %.2f\n", r.Ratio)
	}
	for _, run := range r.Runs {
		if run.Actions == nil {
			continue
		}
		a := run.Actions
		fmt.Fprintf(bw, "\nbot actions, %s run: decided %s; strikes %d; results %s\n", run.Name, counts(a.Decided), a.Strikes, counts(a.Results))
		fmt.Fprintf(bw, "  REST calls the fake IM server received: %s; %d carried out\n", counts(a.Calls), a.Effective)
		if a.Unsettled != "" {
			fmt.Fprintf(bw, "  NOT SETTLED: %s\n", a.Unsettled)
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(bw, "\ntargets (DESIGN.md):")
		for _, t := range r.Targets {
			verdict := "NOT MET"
			if t.Met {
				verdict = "met"
			}
			fmt.Fprintf(bw, "  %-7s %s: %s\n", verdict, t.What, t.Value)
		}
	}
	return bw.Flush()
}

// counts prints a map as "k1 n1, k2 n2" sorted by key.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	total := 0
	for k, n := range m {
		keys = append(keys, k)
		total += n
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// countActions sums up a bot run from its audit records and the fake's
// calls.
func countActions(recs []audit.Record, calls []timtest.Call) *actions {
	a := &actions{Decided: map[string]int{}, Results: map[string]int{}, Calls: map[string]int{}}
	for _, r := range recs {
		switch r.Kind {
		case audit.KindDecision:
			for _, act := range r.Actions {
				switch {
				case act.Kind == "strike" && !act.Shadow:
					a.Strikes++
				case act.ID != "" && !act.Shadow:
					a.Decided[act.Kind]++
				}
			}
		case audit.KindAction:
			a.Results[r.Result]++
		}
	}
	for _, c := range calls {
		a.Calls[c.Command]++
		if c.Effective() {
			a.Effective++
		}
	}
	return a
}

// redisVersion asks the server for its version.
func redisVersion(ctx context.Context, rawURL string) string {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return ""
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

// redactURL hides a password in a Redis URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// cpuModel reads the CPU model on Linux.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// memory reads the machine's memory in GiB on Linux.
func memory() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return ""
	}
	var kb int64
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			_, _ = fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
		}
	}
	if kb == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", float64(kb)/(1<<20))
}

// loadAverage reads the 1-minute load average on Linux.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return ""
}
