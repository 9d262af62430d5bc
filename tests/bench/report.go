package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything one run measured. It is written as JSON
// (bench.json) and rendered as the table (bench.txt and stdout).
type report struct {
	Started        time.Time `json:"started"`
	Seconds        float64   `json:"seconds"`
	N              int       `json:"n"`
	VXN            string    `json:"vxn"`
	VXNVersion     string    `json:"vxn_version"`
	Runc           string    `json:"runc"`
	Kernel         string    `json:"kernel"`
	Initramfs      string    `json:"initramfs"`
	GuestMemoryMiB int       `json:"guest_memory_mib"`
	Dom0MemMiB     int64     `json:"dom0_memtotal_mib"`

	Lifecycle []timing         `json:"lifecycle"`
	Rootfs    []rootfsResult   `json:"rootfs"`
	Stdio     throughputResult `json:"stdio"`
	Vchan     throughputResult `json:"vchan"`
	Memory    memoryResult     `json:"memory"`
	Targets   []target         `json:"targets"`
	Summary   string           `json:"summary"`
	Errors    []string         `json:"errors,omitempty"`
}

// Keys of the lifecycle timings.
const (
	keyRunc   = "runc"
	keyCold   = "cold"
	keyWarm   = "warm"
	keyCreate = "create"
	keyStart  = "start"
	keyDelete = "delete"
	keyBare   = "bare"
	keyBoot   = "bare-boot"
	keyDestr  = "bare-destroy"
)

// timing is one row of N wall-clock times.
type timing struct {
	Key      string    `json:"key"`
	Name     string    `json:"name"`
	N        int       `json:"n"`
	SamplesS []float64 `json:"samples_s,omitempty"`
	MedianS  float64   `json:"median_s,omitempty"`
	P90S     float64   `json:"p90_s,omitempty"`
	// RatioToRunc: median over runc's median.
	RatioToRunc float64 `json:"ratio_to_runc,omitempty"`
	Note        string  `json:"note,omitempty"`
	// NA says why there are no samples.
	NA string `json:"na,omitempty"`
}

func newTiming(key, name string, s samples) timing {
	t := timing{Key: key, Name: name, N: len(s)}
	for _, d := range s {
		t.SamplesS = append(t.SamplesS, d.Seconds())
	}
	if len(s) > 0 {
		t.MedianS, t.P90S = s.median().Seconds(), s.p90().Seconds()
	}
	return t
}

// rootfsResult is the image build of one tree size.
type rootfsResult struct {
	SizeMiB  int       `json:"size_mib"`
	Files    int       `json:"files,omitempty"`
	Bytes    int64     `json:"bytes,omitempty"`
	SamplesS []float64 `json:"samples_s,omitempty"`
	MedianS  float64   `json:"median_s,omitempty"`
	MBps     float64   `json:"mb_per_s,omitempty"`
	NA       string    `json:"na,omitempty"`
}

// throughputResult is a byte stream from a guest to a dom0 process.
type throughputResult struct {
	What  string    `json:"what"`
	Bytes int64     `json:"bytes"`
	MBps  []float64 `json:"mb_per_s,omitempty"`
	// MedianMBps is the median of MBps.
	MedianMBps float64 `json:"median_mb_per_s,omitempty"`
	NA         string  `json:"na,omitempty"`
}

// memoryResult is what running containers cost dom0.
type memoryResult struct {
	Containers int `json:"containers"`
	// MonitorRSSMiB: VmRSS of each pid-file process, all containers up.
	MonitorRSSMiB    []float64 `json:"monitor_rss_mib,omitempty"`
	MonitorRSSMedian float64   `json:"monitor_rss_median_mib,omitempty"`
	MonitorRSSMax    float64   `json:"monitor_rss_max_mib,omitempty"`
	// StdioMonitorHWMMiB: VmHWM of the monitor that relayed the stdio
	// transfers, after them: its peak over its whole life, create included.
	StdioMonitorHWMMiB float64 `json:"stdio_monitor_hwm_mib,omitempty"`
	AvailBeforeMiB     float64 `json:"memavailable_before_mib,omitempty"`
	AvailAfterMiB      float64 `json:"memavailable_after_mib,omitempty"`
	PerContainerMiB    float64 `json:"dom0_per_container_mib,omitempty"`
	NA                 string  `json:"na,omitempty"`
}

// target is one of issue 6's goals and where this run stands.
type target struct {
	Name  string  `json:"name"`
	Goal  string  `json:"goal"`
	Value float64 `json:"value,omitempty"`
	// Status is "met", "missed" or "n/a".
	Status string `json:"status"`
	Note   string `json:"note,omitempty"`
}

func (r *report) timing(key string) *timing {
	for i := range r.Lifecycle {
		if r.Lifecycle[i].Key == key {
			return &r.Lifecycle[i]
		}
	}
	return nil
}

// median returns the median of a lifecycle row in seconds, 0 if the row
// has no samples.
func (r *report) median(key string) float64 {
	if t := r.timing(key); t != nil {
		return t.MedianS
	}
	return 0
}

// ratio is a/b, or NaN when either is missing.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// lifecycleOrder is the order of the lifecycle rows in the table.
var lifecycleOrder = []string{keyRunc, keyCold, keyWarm, keyCreate, keyStart, keyDelete, keyBare, keyBoot, keyDestr}

// finish orders the rows and computes the ratios, the targets and the
// summary line.
func (r *report) finish() {
	rank := func(key string) int { return slices.Index(lifecycleOrder, key) }
	sort.SliceStable(r.Lifecycle, func(i, j int) bool { return rank(r.Lifecycle[i].Key) < rank(r.Lifecycle[j].Key) })
	runc := r.median(keyRunc)
	for i := range r.Lifecycle {
		if q := ratio(r.Lifecycle[i].MedianS, runc); !math.IsNaN(q) {
			r.Lifecycle[i].RatioToRunc = q
		}
	}
	warm := ratio(r.median(keyWarm), runc)
	cold := ratio(r.median(keyCold), r.median(keyBare))
	stdio := ratio(r.Stdio.MedianMBps, r.Vchan.MedianMBps)
	rss := r.Memory.MonitorRSSMax
	if rss == 0 {
		rss = math.NaN()
	}
	r.Targets = []target{
		newTarget("warm vxn run true / runc run true", "<= 3", warm, 3, false, r.warmNote()),
		newTarget("cold vxn run true / bare xl create+boot+destroy", "<= 1.2", cold, 1.2, false, r.coldNote()),
		newTarget("stdio through the agent / raw vchan", ">= 0.5", stdio, 0.5, true, r.stdioNote()),
		newTarget("monitor RSS (MiB, largest)", "<= 15", rss, 15, false, ""),
	}
	r.Summary = fmt.Sprintf("bench: warm/runc=%s cold/bare=%s stdio/vchan=%s monitor_rss_mib=%s",
		decimal(warm, 2), decimal(cold, 2), decimal(stdio, 2), decimal(rss, 1))
}

func newTarget(name, goal string, v, limit float64, atLeast bool, note string) target {
	t := target{Name: name, Goal: goal, Note: note}
	switch {
	case math.IsNaN(v):
		t.Status = "n/a"
		return t
	case atLeast && v >= limit, !atLeast && v <= limit:
		t.Status = "met"
	default:
		t.Status = "missed"
	}
	t.Value = v
	return t
}

func decimal(v float64, digits int) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", digits, v)
}

// warmNote explains the warm row from the other measured rows.
func (r *report) warmNote() string {
	w := r.timing(keyWarm)
	if w == nil || w.N == 0 {
		if w != nil {
			return w.NA
		}
		return ""
	}
	return fmt.Sprintf("warm %s vs runc %s; cold start %s, delete %s (a warm run still deletes its guest)",
		seconds(sec(w.MedianS)), seconds(sec(r.median(keyRunc))), seconds(sec(r.median(keyStart))), seconds(sec(r.median(keyDelete))))
}

// coldNote splits the cold run against the bare boot.
func (r *report) coldNote() string {
	if r.median(keyCold) == 0 || r.median(keyBare) == 0 {
		return ""
	}
	return fmt.Sprintf("vxn create %s vs bare create+boot %s; vxn delete %s vs xl destroy %s; vxn start %s",
		seconds(sec(r.median(keyCreate))), seconds(sec(r.median(keyBoot))),
		seconds(sec(r.median(keyDelete))), seconds(sec(r.median(keyDestr))), seconds(sec(r.median(keyStart))))
}

func (r *report) stdioNote() string {
	if r.Stdio.MedianMBps == 0 || r.Vchan.MedianMBps == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f MB/s vs %.1f MB/s", r.Stdio.MedianMBps, r.Vchan.MedianMBps)
}

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// write renders the table to w.
func (r *report) write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "vxn bench, %s: %s (%s), guest kernel %s, %d MiB guests, dom0 %d MiB\n",
		r.Started.UTC().Format(time.RFC3339), r.VXN, r.VXNVersion, filepath.Base(r.Kernel), r.GuestMemoryMiB, r.Dom0MemMiB)
	fmt.Fprintf(&b, "wall-clock times in this dom0 (under QEMU/TCG absolutes are slow: compare ratios); %.0fs in all\n\n", r.Seconds)
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASURE\tN\tMEDIAN\tP90\tVS RUNC\tNOTE")
	for _, t := range r.Lifecycle {
		if t.N == 0 {
			fmt.Fprintf(tw, "%s\t-\tn/a\t\t\t%s\n", t.Name, t.NA)
			continue
		}
		rr := ""
		if t.RatioToRunc > 0 {
			rr = fmt.Sprintf("%.1fx", t.RatioToRunc)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", t.Name, t.N, seconds(sec(t.MedianS)), seconds(sec(t.P90S)), rr, t.Note)
	}
	for _, f := range r.Rootfs {
		name := fmt.Sprintf("rootfs image build, %s tree", sizeName(f.SizeMiB))
		if f.NA != "" {
			fmt.Fprintf(tw, "%s\t-\tn/a\t\t\t%s\n", name, f.NA)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t\t%d files, %.1f MiB, %.0f MB/s\n", name, len(f.SamplesS),
			seconds(sec(f.MedianS)), seconds(sec(maxFloat(f.SamplesS))), f.Files, float64(f.Bytes)/(1<<20), f.MBps)
	}
	for _, t := range []throughputResult{r.Stdio, r.Vchan} {
		if t.NA == "" && len(t.MBps) == 0 {
			t.NA = "not measured"
		}
		if t.NA != "" {
			fmt.Fprintf(tw, "%s\t-\tn/a\t\t\t%s\n", t.What, t.NA)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f MB/s\t\t\tslowest %.1f MB/s\n", t.What, len(t.MBps), t.MedianMBps, minFloat(t.MBps))
	}
	m := r.Memory
	if m.NA != "" {
		fmt.Fprintf(tw, "monitor RSS, dom0 memory per container\t-\tn/a\t\t\t%s\n", m.NA)
	} else {
		note := fmt.Sprintf("largest %.1f MiB", m.MonitorRSSMax)
		if m.StdioMonitorHWMMiB > 0 {
			note += fmt.Sprintf("; VmHWM over the life (create, stdio transfers) of the monitor that relayed stdio %.1f MiB", m.StdioMonitorHWMMiB)
		}
		fmt.Fprintf(tw, "monitor RSS (VmRSS), containers running\t%d\t%.1f MiB\t\t\t%s\n", len(m.MonitorRSSMiB), m.MonitorRSSMedian, note)
		fmt.Fprintf(tw, "dom0 memory per running container\t%d\t%.1f MiB\t\t\tMemAvailable %.0f -> %.0f MiB with %d running\n",
			m.Containers, m.PerContainerMiB, m.AvailBeforeMiB, m.AvailAfterMiB, m.Containers)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\ntargets (issue 6):\n")
	tw = tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	for _, t := range r.Targets {
		v := "n/a"
		if t.Status != "n/a" {
			v = fmt.Sprintf("%.2f", t.Value)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", t.Name, t.Goal, v, t.Status, t.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	b.WriteString(r.Summary + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func minFloat(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	m := v[0]
	for _, x := range v[1:] {
		m = math.Min(m, x)
	}
	return m
}

func sizeName(mib int) string {
	if mib >= 1024 && mib%1024 == 0 {
		return fmt.Sprintf("%d GiB", mib/1024)
	}
	return fmt.Sprintf("%d MiB", mib)
}

// save writes bench.txt and bench.json into dir.
func (r *report) save(dir string) error {
	var txt strings.Builder
	if err := r.write(&txt); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.txt"), []byte(txt.String()), 0o644); err != nil {
		return fmt.Errorf("saving the table: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("saving the results: %w", err)
	}
	return nil
}
