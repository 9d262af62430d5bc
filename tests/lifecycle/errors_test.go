package lifecycle_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestBadBundle checks that create rejects a bad bundle with a useful
// error (stderr, exit status 1) and creates nothing.
func TestBadBundle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, bundle string)
		wants []string
	}{
		{
			name: "missing-config",
			spoil: func(t *testing.T, b string) {
				if err := os.Remove(filepath.Join(b, "config.json")); err != nil {
					t.Fatal(err)
				}
			},
			wants: []string{"config.json", "no such file or directory"},
		},
		{
			name: "invalid-json",
			spoil: func(t *testing.T, b string) {
				// The ',' is at line 3, column 26.
				bad := "{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": { \"args\": [ , ] }\n}\n"
				if err := os.WriteFile(filepath.Join(b, "config.json"), []byte(bad), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wants: []string{"config.json:3:26", "invalid character ','"},
		},
		{
			name:  "ociVersion-2",
			spoil: editSpec(func(s *specs.Spec) { s.Version = "2.0.0" }),
			wants: []string{"ociVersion", `"2.0.0"`, "not supported"},
		},
		{
			name: "missing-rootfs",
			spoil: func(t *testing.T, b string) {
				if err := os.RemoveAll(filepath.Join(b, "rootfs")); err != nil {
					t.Fatal(err)
				}
			},
			wants: []string{"root.path", "rootfs does not exist"},
		},
		{
			name:  "empty-args",
			spoil: editSpec(func(s *specs.Spec) { s.Process.Args = nil }),
			wants: []string{"process.args", "empty"},
		},
		{
			name:  "relative-cwd",
			spoil: editSpec(func(s *specs.Spec) { s.Process.Cwd = "tmp" }),
			wants: []string{"process.cwd", `"tmp" is not an absolute path`},
		},
		{
			name:  "terminal-without-console-socket",
			spoil: editSpec(func(s *specs.Spec) { s.Process.Terminal = true }),
			wants: []string{"terminal", "--console-socket"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			b := h.bundle(withArgs("true"))
			tc.spoil(t, b)
			c, r := h.create("bad", b, nil)
			wantFail(t, r, tc.wants...)
			if !strings.HasPrefix(r.stderr, "vxn: ") || strings.Count(strings.TrimSuffix(r.stderr, "\n"), "\n") != 0 {
				t.Errorf("want one error line on stderr, got %q", r.stderr)
			}
			if _, err := os.Stat(c.pidFile); err == nil {
				t.Errorf("a failed create wrote the pid file")
			}
			h.assertNothingCreated()
			_, sr := h.state("bad")
			wantFail(t, sr, "does not exist")
		})
	}
}

// editSpec returns a bundle breaker that edits config.json.
func editSpec(edit func(*specs.Spec)) func(*testing.T, string) {
	return func(t *testing.T, b string) {
		s := readSpec(t, b)
		edit(s)
		writeSpec(t, b, s)
	}
}

// TestBadID checks that invalid container IDs are refused by every
// command and create nothing, and that an engine's 64-character ID works.
func TestBadID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("true"))
	for _, id := range []string{"", "a/b", "..", ".", "../x", "a b", strings.Repeat("a", 129)} {
		_, r := h.create(id, b, nil)
		wantFail(t, r, "invalid container id")
		h.assertNothingCreated()
		for _, cmd := range [][]string{{"start", id}, {"state", id}, {"kill", id, "9"}, {"delete", id}} {
			wantFail(t, h.vxn(cmd...), "invalid container id")
		}
	}
	// Engines use 64 hex digits.
	long := strings.Repeat("a", 64)
	if n := len(filepath.Join(h.root, long, "fake-agent.sock")); n >= 108 {
		t.Skipf("socket paths under %s would be %d bytes: too long for a unix socket", h.root, n)
	}
	h.mustCreate(long, b, nil)
	h.wantStatus(long, specs.StateCreated)
	h.mustVxn("delete", "--force", long)
	h.assertGone(long)
}

// TestDuplicateID checks that a second create of an ID fails and does not
// harm the first container.
func TestDuplicateID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("sh", "-c", "echo first"))
	first := h.mustCreate("dup", b, nil)
	pid := first.pid()

	b2 := h.bundle(withArgs("sh", "-c", "echo second"))
	second, r := h.create("dup", b2, nil)
	wantFail(t, r, "already exists")
	if _, err := os.Stat(second.pidFile); err == nil {
		t.Errorf("the failed create wrote its pid file")
	}
	st := h.wantStatus("dup", specs.StateCreated)
	if st.Pid != pid || st.Bundle != b || !alive(pid) {
		t.Errorf("after a duplicate create: state %+v; want pid %d (alive) and bundle %s", st, pid, b)
	}
	h.mustVxn("start", "dup")
	h.waitStatus("dup", specs.StateStopped, 10*time.Second)
	if out := first.output(); out != "first\n" {
		t.Errorf("the first container printed %q, want %q", out, "first\n")
	}
	h.mustVxn("delete", "dup")
	h.assertGone("dup")
}

// TestStartWrongState checks start of a stopped container and start twice.
func TestStartWrongState(t *testing.T) {
	t.Parallel()
	t.Run("stopped", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("true"))
		h.mustCreate("st", b, nil)
		h.mustVxn("start", "st")
		h.waitStatus("st", specs.StateStopped, 10*time.Second)
		wantFail(t, h.vxn("start", "st"), "cannot start a container that has stopped")
		h.wantStatus("st", specs.StateStopped)
		h.mustVxn("delete", "st")
		h.assertGone("st")
	})
	t.Run("twice", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("sleep", "100"))
		h.mustCreate("st2", b, nil)
		h.mustVxn("start", "st2")
		wantFail(t, h.vxn("start", "st2"), "cannot start an already running container")
		h.wantStatus("st2", specs.StateRunning)
		if n := len(procsIn(filepath.Join(b, "rootfs"))); n != 1 {
			t.Errorf("%d container processes after start twice, want 1", n)
		}
		h.mustVxn("delete", "--force", "st2")
		h.assertGone("st2")
	})
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		wantFail(t, h.vxn("start", "nosuch"), "does not exist")
		wantFail(t, h.vxn("state", "nosuch"), "does not exist")
		wantFail(t, h.vxn("pause", "nosuch"), "does not exist")
		wantFail(t, h.vxn("resume", "nosuch"), "does not exist")
		h.assertNothingCreated()
	})
}

// logLine is one line of --log-format json.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Time  string `json:"time"`
}

// lastLogLine returns the last line of a json log, decoded.
func lastLogLine(t *testing.T, path string) logLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the --log file: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	last := lines[len(lines)-1]
	var l logLine
	if err := json.Unmarshal([]byte(last), &l); err != nil {
		t.Fatalf("last line of the --log file %q: %v", last, err)
	}
	if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
		t.Errorf("log line %q: time: %v", last, err)
	}
	return l
}

// TestLogFile checks --log and --log-format as podman and containerd pass
// them.
func TestLogFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("true"))

	// containerd-shim: "--log F --log-format json", a failing create.
	bad := h.bundle(withArgs("true"), func(s *specs.Spec) { s.Process.Cwd = "relative" })
	f1 := h.path("log1.json")
	r := runVxn(t, nil, "--root", h.root, "--log", f1, "--log-format", "json", "create", "--bundle", bad, "lg")
	wantFail(t, r, "process.cwd")
	l := lastLogLine(t, f1)
	if l.Level != "error" || !strings.Contains(l.Msg, "process.cwd") || !strings.Contains(l.Msg, `"relative" is not an absolute path`) {
		t.Errorf("last log line %+v: want level error and the create error", l)
	}
	h.assertNothingCreated()

	// podman: "--log-format=json --log F", a failing state.
	f2 := h.path("log2.json")
	r = runVxn(t, nil, "--root", h.root, "--log-format=json", "--log", f2, "state", "nosuch")
	wantFail(t, r, "does not exist")
	if l := lastLogLine(t, f2); l.Level != "error" || !strings.Contains(l.Msg, "does not exist") {
		t.Errorf("last log line %+v: want level error and the state error", l)
	}

	// The file is created even when there is nothing to log (containerd
	// reads it after every call).
	f3 := h.path("log3.json")
	runOK := func(args ...string) {
		t.Helper()
		if r := runVxn(t, nil, append([]string{"--root", h.root, "--log", f3, "--log-format", "json"}, args...)...); r.code != 0 {
			t.Fatalf("%v", r)
		}
	}
	runOK("list")
	if _, err := os.Stat(f3); err != nil {
		t.Errorf("a successful command did not create the --log file: %v", err)
	}
	// A whole lifecycle with the same log, as the shim does it.
	if _, r := h.createWith([]string{"--log", f3, "--log-format", "json"}, "lg", b, nil); r.code != 0 {
		t.Fatalf("%v", r)
	}
	runOK("start", "lg")
	h.waitStatus("lg", specs.StateStopped, 10*time.Second)
	runOK("delete", "lg")
	if data := readFile(t, f3); strings.Contains(data, `"level":"error"`) {
		t.Errorf("successful commands logged errors: %s", data)
	}
	h.assertGone("lg")

	// The default text format.
	f4 := h.path("log4.txt")
	r = runVxn(t, nil, "--root", h.root, "--log", f4, "delete", "nosuch")
	wantFail(t, r, "does not exist")
	if data := readFile(t, f4); !strings.Contains(data, "level=error") || !strings.Contains(data, "does not exist") {
		t.Errorf("text log %q: want level=error and the error", data)
	}

	// An unknown format is an error, not silently text.
	r = runVxn(t, nil, "--root", h.root, "--log-format", "xml", "list")
	wantFail(t, r, "xml")
}
