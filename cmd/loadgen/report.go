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
	// Closed is the closed loop's median over the rounds, per target.
	Closed []median `json:"closed_loop_median,omitempty"`
	// Ratios are the bot's closed-loop throughput over the bare and the
	// floor handler's: the median of the rounds' ratios, and each round's.
	Ratios  []ratio  `json:"ratios,omitempty"`
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
	// Round is the closed-loop round (0 for the open loop).
	Round int `json:"round,omitempty"`
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
	// PerCallback is the CPU time (user and system, from /proc/PID/stat)
	// each process used per answered callback, in µs: "server" (the bot,
	// the bare or the floor handler), "redis" (when loadgen started it) and
	// "loadgen".
	PerCallback map[string]float64 `json:"us_per_callback,omitempty"`

	seconds map[string]float64
}

// cpuTimes are the counters of the first line of /proc/stat, and the
// times of loadgen's processes.
type cpuTimes struct {
	total, idle, steal, ours uint64
	pids                     map[string]int
	procs                    map[string]uint64
}

// clockTicks is the unit of /proc/stat and /proc/PID/stat: USER_HZ, 100 a
// second on Linux whatever the kernel's own tick.
const clockTicks = 100

// readCPU reads /proc/stat and the times of pids (by role); ok is false
// elsewhere than on Linux.
func readCPU(pids map[string]int) (cpuTimes, bool) {
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
	t.procs = make(map[string]uint64, len(pids))
	for role, pid := range pids {
		n := processTicks(pid)
		t.procs[role] = n
		t.ours += n
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
	if before.total == 0 {
		return nil
	}
	now, ok := readCPU(before.pids)
	if !ok || now.total <= before.total {
		return nil
	}
	d := float64(now.total - before.total)
	busy := d - float64(now.idle-before.idle)
	ours := float64(now.ours - min(before.ours, now.ours))
	u := &cpuUse{
		Busy:    100 * busy / d,
		Others:  100 * max(busy-ours, 0) / d,
		Steal:   100 * float64(now.steal-before.steal) / d,
		seconds: map[string]float64{},
	}
	for role, n := range now.procs {
		u.seconds[role] = float64(n-min(before.procs[role], n)) / clockTicks
	}
	return u
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

// median is a target's closed loop, the median of its rounds.
type median struct {
	Target     string        `json:"target"`
	Rounds     int           `json:"rounds"`
	Throughput float64       `json:"throughput"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	// CPU is µs of CPU per callback, by process (see cpuUse.PerCallback).
	CPU map[string]float64 `json:"us_per_callback,omitempty"`
}

// ratio compares the bot's closed-loop throughput with a reference
// handler's.
type ratio struct {
	Of     string    `json:"of"` // "bot/bare" or "bot/floor"
	Median float64   `json:"median"`
	Rounds []float64 `json:"rounds"`
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

func (r *report) addRun(who string, round int, l harness.Load, st *harness.Stats, cpu *cpuUse, a *actions) {
	name := fmt.Sprintf("closed %d workers #%d", l.Workers, round)
	if l.Rate > 0 {
		name = fmt.Sprintf("open %g/s", l.Rate)
	}
	if cpu != nil && st.Answered > 0 {
		cpu.PerCallback = map[string]float64{}
		for role, sec := range cpu.seconds {
			cpu.PerCallback[role] = sec * 1e6 / float64(st.Answered)
		}
	}
	r.Runs = append(r.Runs, runInfo{Name: name, Target: who, Round: round, Stats: st, CPU: cpu, Actions: a})
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

// finish computes the medians and ratios and checks the targets of
// DESIGN.md and issue 14.
func (r *report) finish() {
	if open := r.find("bot", "open"); open != nil {
		settled := open.Actions != nil && open.Actions.Unsettled == ""
		ok := open.Latency.P99 < 5*time.Millisecond && open.Errors == 0 && open.Non2xx == 0 && open.BadEnvelope == 0 &&
			open.Throughput >= 0.99*r.rate && settled
		what := "p99 < 5 ms at 2,000 callbacks/s, every callback answered, every action settled"
		if r.rate < 2000 {
			what += fmt.Sprintf(" (this run: %g/s, so the target is not measured)", r.rate)
		}
		value := fmt.Sprintf("p99 %s at %g/s, %d of %d answered, %d errors", ms(open.Latency.P99), r.rate, open.Answered, open.Sent,
			open.Errors+open.Non2xx+open.BadEnvelope)
		if !settled {
			value += ", actions NOT settled"
		}
		r.Targets = append(r.Targets, target{What: what, Value: value, Met: ok && r.rate >= 2000})
	}
	for _, who := range []string{"bot", "bare", "floor"} {
		if m, ok := r.median(who); ok {
			r.Closed = append(r.Closed, m)
		}
	}
	for _, ref := range []struct {
		name string
		want float64
	}{{"bare", 0.5}, {"floor", 0.8}} {
		var rounds []float64
		for _, bot := range r.Runs {
			if bot.Target != "bot" || bot.Mode != "closed" {
				continue
			}
			for _, other := range r.Runs {
				if other.Target == ref.name && other.Mode == "closed" && other.Round == bot.Round && other.Throughput > 0 {
					rounds = append(rounds, bot.Throughput/other.Throughput)
				}
			}
		}
		if len(rounds) == 0 {
			continue
		}
		rt := ratio{Of: "bot/" + ref.name, Median: medianOf(rounds), Rounds: rounds}
		r.Ratios = append(r.Ratios, rt)
		r.Targets = append(r.Targets, target{
			What:  fmt.Sprintf("closed-loop throughput at least %g of the %s handler's (median of %d rounds)", ref.want, ref.name, len(rounds)),
			Value: fmt.Sprintf("%.2f (rounds: %s)", rt.Median, joinFloats(rounds)),
			Met:   rt.Median >= ref.want,
		})
	}
	if m, ok := r.median("bot"); ok && m.CPU != nil {
		for _, c := range []struct {
			role, what string
			most       float64
		}{{"server", "bot", 80}, {"redis", "Redis", 25}} {
			us, ok := m.CPU[c.role]
			if !ok {
				continue
			}
			r.Targets = append(r.Targets, target{
				What:  fmt.Sprintf("%s CPU per callback at saturation below %g µs", c.what, c.most),
				Value: fmt.Sprintf("%.0f µs", us),
				Met:   us < c.most,
			})
		}
	}
}

// median sums up who's closed-loop rounds.
func (r *report) median(who string) (median, bool) {
	var tp, p50, p99 []float64
	cpu := map[string][]float64{}
	for _, run := range r.Runs {
		if run.Target != who || run.Mode != "closed" {
			continue
		}
		tp = append(tp, run.Throughput)
		p50 = append(p50, float64(run.Latency.P50))
		p99 = append(p99, float64(run.Latency.P99))
		if run.CPU != nil {
			for role, us := range run.CPU.PerCallback {
				cpu[role] = append(cpu[role], us)
			}
		}
	}
	if len(tp) == 0 {
		return median{}, false
	}
	m := median{Target: who, Rounds: len(tp), Throughput: medianOf(tp),
		P50: time.Duration(medianOf(p50)), P99: time.Duration(medianOf(p99))}
	if len(cpu) > 0 {
		m.CPU = map[string]float64{}
		for role, v := range cpu {
			m.CPU[role] = medianOf(v)
		}
	}
	return m, true
}

// medianOf is the median of v (the mean of the middle two for an even
// count).
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func joinFloats(v []float64) string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = fmt.Sprintf("%.2f", f)
	}
	return strings.Join(parts, ", ")
}

// us prints µs of CPU per callback, "-" when unknown.
func us(m map[string]float64, role string) string {
	v, ok := m[role]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
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
	fmt.Fprintf(bw, "busy, of which other processes than loadgen's (other work that skewed the run), and steal (the hypervisor's);\n")
	fmt.Fprintf(bw, "µs/callback: CPU time of the target's process (server), of redis-server and of loadgen, per answered callback\n\n")

	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\ttarget\tsent\tanswered\terrors\tnon-2xx\tbad envelope\trefused\tthroughput/s\tp50\tp90\tp99\tp99.9\tmax\tpacer lag p99\tCPU busy\tother procs\tsteal\tserver µs\tredis µs\tloadgen µs\t")
	for _, run := range r.Runs {
		lag := "-"
		if run.Mode == "open" {
			lag = ms(run.PacerLag.P99)
		}
		busy, others, steal := "-", "-", "-"
		var per map[string]float64
		if run.CPU != nil {
			busy, others, steal = fmt.Sprintf("%.0f%%", run.CPU.Busy), fmt.Sprintf("%.0f%%", run.CPU.Others), fmt.Sprintf("%.1f%%", run.CPU.Steal)
			per = run.CPU.PerCallback
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			run.Name, run.Target, run.Sent, run.Answered, run.Errors, run.Non2xx, run.BadEnvelope, run.Refused,
			run.Throughput, ms(run.Latency.P50), ms(run.Latency.P90), ms(run.Latency.P99), ms(run.Latency.P999), ms(run.Latency.Max), lag,
			busy, others, steal, us(per, "server"), us(per, "redis"), us(per, "loadgen"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, run := range r.Runs {
		if run.FirstError != "" {
			fmt.Fprintf(bw, "first error (%s, %s): %s\n", run.Name, run.Target, run.FirstError)
		}
	}
	if len(r.Closed) > 0 {
		fmt.Fprintf(bw, "\nclosed loop, median of the rounds:\n")
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\trounds\tthroughput/s\tp50\tp99\tserver µs/callback\tredis µs/callback\tloadgen µs/callback\t")
		for _, m := range r.Closed {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", m.Target, m.Rounds, m.Throughput, ms(m.P50), ms(m.P99),
				us(m.CPU, "server"), us(m.CPU, "redis"), us(m.CPU, "loadgen"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, rt := range r.Ratios {
		fmt.Fprintf(bw, "throughput %s (closed loop): %.2f, median of rounds %s\n", rt.Of, rt.Median, joinFloats(rt.Rounds))
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
