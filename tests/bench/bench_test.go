package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestStats(t *testing.T) {
	ms := func(v ...int) samples {
		var s samples
		for _, x := range v {
			s = append(s, time.Duration(x)*time.Millisecond)
		}
		return s
	}
	for _, tc := range []struct {
		s           samples
		median, p90 time.Duration
	}{
		{nil, 0, 0},
		{ms(5), 5 * time.Millisecond, 5 * time.Millisecond},
		{ms(4, 1, 3, 2), 2500 * time.Microsecond, 4 * time.Millisecond},
		{ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 5500 * time.Microsecond, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), 6 * time.Millisecond, 10 * time.Millisecond},
	} {
		if got := tc.s.median(); got != tc.median {
			t.Errorf("median(%v) = %v, want %v", tc.s, got, tc.median)
		}
		if got := tc.s.p90(); got != tc.p90 {
			t.Errorf("p90(%v) = %v, want %v", tc.s, got, tc.p90)
		}
	}
	if m := medianFloat([]float64{3, 1, 2}); m != 2 {
		t.Errorf("medianFloat = %v", m)
	}
	if !math.IsNaN(medianFloat(nil)) || !math.IsNaN(maxFloat(nil)) || !math.IsNaN(minFloat(nil)) {
		t.Error("no values should give NaN")
	}
	if got := seconds(1234 * time.Millisecond); got != "1.23s" {
		t.Errorf("seconds = %q", got)
	}
	if got := mbps(64<<20, 2*time.Second); math.Abs(got-33.554432) > 1e-9 {
		t.Errorf("mbps = %v", got)
	}
}

func TestFileSizes(t *testing.T) {
	const total = 100 << 20
	a, b := fileSizes(total, 2), fileSizes(total, 2)
	var sum int64
	small := 0
	for i, n := range a {
		if n != b[i] {
			t.Fatal("the same seed gave other sizes")
		}
		if n <= 0 || n >= 4<<20 {
			t.Fatalf("size %d out of the mix", n)
		}
		if n < 8<<10 {
			small++
		}
		sum += n
	}
	if sum != total {
		t.Errorf("sizes add up to %d, want %d", sum, total)
	}
	// About 170 KiB a file, half of them small.
	if len(a) < 400 || len(a) > 900 || small < len(a)/3 {
		t.Errorf("%d files, %d small: not the mix", len(a), small)
	}
}

func TestMakeTree(t *testing.T) {
	dir := t.TempDir()
	sizes := fileSizes(3<<20, 1)
	if err := makeTree(dir, sizes); err != nil {
		t.Fatal(err)
	}
	var n int
	var sum int64
	zeros := 0
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		n++
		sum += info.Size()
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		zeros += bytes.Count(b, []byte{0})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(sizes) || sum != 3<<20 {
		t.Errorf("%d files of %d bytes, want %d of %d", n, sum, len(sizes), 3<<20)
	}
	if zeros > int(sum)/100 {
		t.Errorf("%d zero bytes in %d: content should be random", zeros, sum)
	}
}

func TestHasCommand(t *testing.T) {
	help := `NAME:
   vxn - OCI runtime

COMMANDS:
   create    create a container
   pool      keep idle guests booted, so that create claims one
   help, h   Shows a list of commands or help for one command

GLOBAL OPTIONS:
   --root value        directory for container state (default: "/run/vxn")
   --pool              not a command
`
	for name, want := range map[string]bool{"pool": true, "create": true, "help": true, "h": false, "--pool": false, "poo": false} {
		if got := hasCommand(help, name); got != want {
			t.Errorf("hasCommand(%q) = %v", name, got)
		}
	}
	if hasCommand(strings.Replace(help, "   pool", "   spool", 1), "pool") {
		t.Error("found pool in a vxn without it")
	}
}

func TestKibField(t *testing.T) {
	status := "Name:\tvxn\nVmHWM:\t   12345 kB\nVmRSS:\t    9876 kB\n"
	if n, err := kibField(status, "VmRSS"); err != nil || n != 9876 {
		t.Errorf("VmRSS = %d, %v", n, err)
	}
	if _, err := kibField(status, "VmSwap"); err == nil {
		t.Error("a missing field was found")
	}
	if _, err := kibField("VmRSS: lots kB\n", "VmRSS"); err == nil {
		t.Error("a bad number was accepted")
	}
}

func TestParseSizes(t *testing.T) {
	if s, err := parseSizes("10, 100,1024"); err != nil || len(s) != 3 || s[2] != 1024 {
		t.Errorf("parseSizes = %v, %v", s, err)
	}
	for _, bad := range []string{"", "10,,", "0", "x"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
	if got := sizeName(1024); got != "1 GiB" {
		t.Errorf("sizeName = %q", got)
	}
}

func TestXLConfig(t *testing.T) {
	got := xlConfig("bench-bare-0", "/boot/k", "/x/initramfs.img", 128)
	for _, want := range []string{`name = "bench-bare-0"`, `type = "pv"`, `kernel = "/boot/k"`, `ramdisk = "/x/initramfs.img"`, "memory = 128", "vcpus = 1"} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
}

func TestTimeStream(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 1000)
	if _, err := timeStream(iotest.OneByteReader(bytes.NewReader(data)), 1000); err != nil {
		t.Error(err)
	}
	if _, err := timeStream(bytes.NewReader(data[:10]), 1000); err == nil {
		t.Error("a short stream was timed")
	}
	if _, err := timeStream(bytes.NewReader(data), 1000); err == nil {
		t.Error("a stream read in one go was timed")
	}
	if _, err := timeStream(io.MultiReader(bytes.NewReader(data[:500]), bytes.NewReader(data)), 1000); err == nil {
		t.Error("a longer stream was accepted")
	}
}

func TestReport(t *testing.T) {
	s := func(secs ...float64) samples {
		var out samples
		for _, x := range secs {
			out = append(out, time.Duration(x*float64(time.Second)))
		}
		return out
	}
	r := &report{N: 2, Lifecycle: []timing{
		newTiming(keyCold, "vxn run true, cold", s(10, 12)),
		newTiming(keyRunc, "runc run true", s(0.5, 0.5)),
		newTiming(keyBare, "bare xl create+boot+destroy", s(10, 10)),
		{Key: keyWarm, Name: "vxn run true, warm", NA: "n/a (vxn has no pool)"},
	}}
	r.Rootfs = []rootfsResult{{SizeMiB: 1024, NA: "skipped: dom0 has 900 MiB available"}}
	r.Stdio = throughputResult{What: "stdio", Bytes: 1, MBps: []float64{30, 40}, MedianMBps: 35}
	r.Vchan = throughputResult{What: "vchan", Bytes: 1, MBps: []float64{50}, MedianMBps: 50}
	r.Memory = memoryResult{Containers: 2, MonitorRSSMiB: []float64{9, 11}, MonitorRSSMedian: 10, MonitorRSSMax: 11, PerContainerMiB: 20}
	r.finish()
	if r.Lifecycle[0].Key != keyRunc || r.Lifecycle[1].Key != keyCold || r.Lifecycle[2].Key != keyWarm {
		t.Errorf("rows not in order: %v", r.Lifecycle)
	}
	if q := r.timing(keyCold).RatioToRunc; q != 22 {
		t.Errorf("cold/runc = %v", q)
	}
	want := "bench: warm/runc=n/a cold/bare=1.10 stdio/vchan=0.70 monitor_rss_mib=11.0"
	if r.Summary != want {
		t.Errorf("summary %q, want %q", r.Summary, want)
	}
	status := map[string]string{}
	for _, tg := range r.Targets {
		status[tg.Goal] = tg.Status
	}
	if status["<= 3"] != "n/a" || status["<= 1.2"] != "met" || status[">= 0.5"] != "met" || status["<= 15"] != "met" {
		t.Errorf("targets: %+v", r.Targets)
	}
	var out strings.Builder
	if err := r.write(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[len(lines)-1] != want {
		t.Errorf("the output does not end with the bench line:\n%s", out.String())
	}
	for _, w := range []string{"n/a (vxn has no pool)", "skipped: dom0 has 900 MiB", "22.0x", "35.0 MB/s"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, out.String())
		}
	}
	dir := t.TempDir()
	if err := r.save(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bench.txt", "bench.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestTargetMissed(t *testing.T) {
	if tg := newTarget("x", "<= 3", 3.5, 3, false, ""); tg.Status != "missed" || tg.Value != 3.5 {
		t.Errorf("%+v", tg)
	}
	if tg := newTarget("x", ">= 0.5", 0.4, 0.5, true, ""); tg.Status != "missed" {
		t.Errorf("%+v", tg)
	}
}

func TestPoolClaimed(t *testing.T) {
	var before, after poolGuests
	js := `{"running": true, "guests": [{"name": "vxnpool-k-128m1v-0", "domid": 7, "ready": true, "current": true},
		{"name": "vxnpool-k-128m1v-1", "domid": 8, "ready": true, "current": true},
		{"name": "vxnpool-k-128m1v-2", "domid": 9, "ready": false, "current": true},
		{"name": "vxnpool-old-128m1v-0", "domid": 5, "ready": true, "current": false}]}`
	if err := json.Unmarshal([]byte(js), &before); err != nil {
		t.Fatal(err)
	}
	ready := before.ready()
	if len(ready) != 2 || !ready[7] || !ready[8] {
		t.Fatalf("ready = %v", ready)
	}
	if before.claimedFrom(ready) {
		t.Error("claimed with nothing gone")
	}
	// Guest 7 was claimed; its replacement has its name and domid 10.
	js = `{"running": true, "guests": [{"name": "vxnpool-k-128m1v-0", "domid": 10, "ready": false, "current": true},
		{"name": "vxnpool-k-128m1v-1", "domid": 8, "ready": true, "current": true}]}`
	if err := json.Unmarshal([]byte(js), &after); err != nil {
		t.Fatal(err)
	}
	if !after.claimedFrom(ready) {
		t.Error("the claim of domain 7 was not seen")
	}
}
