package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestMain lets the test binary serve as a hook: with VXN_HOOKS_ARGV set
// it writes its argv as JSON to that file and exits.
func TestMain(m *testing.M) {
	if out := os.Getenv("VXN_HOOKS_ARGV"); out != "" {
		data, _ := json.Marshal(os.Args)
		if err := os.WriteFile(out, data, 0o644); err != nil {
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// script writes a /bin/sh script with body to dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

var (
	testState = specs.State{
		Version: specs.Version, ID: "c1", Status: specs.StateCreating, Pid: 4168, Bundle: "/run/vxn/c1",
		Annotations: map[string]string{"io.container.manager": "libpod"},
	}
	pathEnv = "PATH=/usr/local/bin:/usr/bin:/bin"
)

func TestFor(t *testing.T) {
	h := &specs.Hooks{
		Prestart:        []specs.Hook{{Path: "/prestart"}},
		CreateRuntime:   []specs.Hook{{Path: "/createRuntime"}},
		CreateContainer: []specs.Hook{{Path: "/createContainer"}},
		StartContainer:  []specs.Hook{{Path: "/startContainer"}},
		Poststart:       []specs.Hook{{Path: "/poststart"}},
		Poststop:        []specs.Hook{{Path: "/poststop"}},
	}
	for _, k := range []Kind{Prestart, CreateRuntime, CreateContainer, StartContainer, Poststart, Poststop} {
		if got := For(h, k); len(got) != 1 || got[0].Path != "/"+string(k) {
			t.Errorf("For(%s) = %v", k, got)
		}
		if got := For(nil, k); got != nil {
			t.Errorf("For(nil, %s) = %v", k, got)
		}
	}
	if got := For(h, "poststopp"); got != nil {
		t.Errorf("For(unknown) = %v", got)
	}
}

func TestRunOrderAndState(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	var hooks []specs.Hook
	for i := range 3 {
		p := script(t, dir, "h"+strconv.Itoa(i), `echo `+strconv.Itoa(i)+` >> "$LOG"; cat > "$LOG.state`+strconv.Itoa(i)+`"`)
		hooks = append(hooks, specs.Hook{Path: p, Env: []string{pathEnv, "LOG=" + log}})
	}
	if err := Run(context.Background(), CreateRuntime, hooks, testState); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, log); got != "0\n1\n2\n" {
		t.Errorf("hooks ran as %q, want 0 1 2 in order", got)
	}
	for i := range 3 {
		var got specs.State
		if err := json.Unmarshal([]byte(readFile(t, log+".state"+strconv.Itoa(i))), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, testState) {
			t.Errorf("hook %d got state %+v, want %+v", i, got, testState)
		}
	}
}

func TestRunNoHooks(t *testing.T) {
	if err := Run(context.Background(), Poststop, nil, testState); err != nil {
		t.Error(err)
	}
}

func TestRunArgv(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"libnetwork-setkey", "-exec-root=/var/run/docker", "a b"}, []string{"libnetwork-setkey", "-exec-root=/var/run/docker", "a b"}},
		{nil, []string{self}},
	}
	for _, tt := range tests {
		out := filepath.Join(t.TempDir(), "argv")
		h := specs.Hook{Path: self, Args: tt.args, Env: []string{"VXN_HOOKS_ARGV=" + out}}
		if err := Run(context.Background(), Prestart, []specs.Hook{h}, testState); err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := json.Unmarshal([]byte(readFile(t, out)), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("args %q: hook got argv %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestRunEnv(t *testing.T) {
	t.Setenv("VXN_HOOKS_INHERITED", "from-caller")
	dir := t.TempDir()
	p := script(t, dir, "env", `echo "${VXN_HOOKS_INHERITED-unset} ${FOO-unset}" > "$0.out"`)
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"nil inherits the caller's", nil, "from-caller unset"},
		{"given exactly", []string{"FOO=bar baz"}, "unset bar baz"},
		{"empty is empty", []string{}, "unset unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Run(context.Background(), Poststart, []specs.Hook{{Path: p, Env: tt.env}}, testState); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(readFile(t, p+".out")); got != tt.want {
				t.Errorf("hook saw %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRunFailure(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	ok := script(t, dir, "ok", `exit 0`)
	bad := script(t, dir, "bad", `echo to-stdout; echo to-stderr >&2; exit 3`)
	never := script(t, dir, "never", `touch "`+ran+`"`)
	hooks := []specs.Hook{{Path: ok}, {Path: bad}, {Path: never, Env: []string{pathEnv}}}
	err := Run(context.Background(), CreateRuntime, hooks, testState)
	want := "createRuntime hook #1 (" + bad + "): exit status 3: to-stdout\nto-stderr"
	if err == nil || err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !errors.Is(err, ErrHookFailed) {
		t.Errorf("error %q does not wrap ErrHookFailed", err)
	}
	var hookErr *Error
	if !errors.As(err, &hookErr) || hookErr.Kind != CreateRuntime || hookErr.Index != 1 || hookErr.Path != bad {
		t.Errorf("errors.As(%q) = %+v", err, hookErr)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the hook after the failed one ran")
	}
}

func TestRunOutputBounded(t *testing.T) {
	dir := t.TempDir()
	p := script(t, dir, "loud", `i=0; while [ $i -lt 2000 ]; do echo "line $i of noise"; i=$((i+1)); done; exit 1`)
	err := Run(context.Background(), Poststop, []specs.Hook{{Path: p}}, testState)
	var hookErr *Error
	if !errors.As(err, &hookErr) {
		t.Fatalf("error = %v", err)
	}
	// Exit status 1, not SIGPIPE: the discarded output did not kill it.
	if hookErr.Err.Error() != "exit status 1" {
		t.Errorf("Err = %v, want exit status 1", hookErr.Err)
	}
	if !strings.HasPrefix(hookErr.Output, "line 0 of noise\n") || !strings.HasSuffix(hookErr.Output, " [...]") ||
		len(hookErr.Output) > maxOutput+len(" [...]") {
		t.Errorf("Output (%d bytes) = %q", len(hookErr.Output), hookErr.Output)
	}
}

func TestRunTimeout(t *testing.T) {
	dir := t.TempDir()
	// The shell's child sleep must die too, or it would hold the output open.
	p := script(t, dir, "slow", `echo started; /bin/sleep 60; echo done`)
	start := time.Now()
	err := Run(context.Background(), Prestart, []specs.Hook{{Path: p, Timeout: new(1)}}, testState)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v with a 1s timeout", d)
	}
	want := "prestart hook #0 (" + p + "): killed after the 1s timeout: context deadline exceeded: started"
	if err == nil || err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrHookFailed) {
		t.Errorf("error %q: want DeadlineExceeded and ErrHookFailed", err)
	}
}

func TestRunCancel(t *testing.T) {
	dir := t.TempDir()
	p := script(t, dir, "slow", `/bin/sleep 60`)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := Run(ctx, Poststart, []specs.Hook{{Path: p}}, testState)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v after cancel", d)
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "poststart hook #0 ("+p+"): stopped: context canceled") {
		t.Errorf("error = %q, want a cancellation", err)
	}
}

func TestRunLeftoverChild(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	// The hook exits 0 but leaves a child holding its stdout.
	p := script(t, dir, "daemon", `/bin/sleep 60 & echo $! > "`+pidFile+`"`)
	t.Cleanup(func() {
		if pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	start := time.Now()
	if err := Run(context.Background(), CreateRuntime, []specs.Hook{{Path: p}}, testState); err != nil {
		t.Errorf("Run = %v, want success", err)
	}
	if d := time.Since(start); d > outputGrace+5*time.Second {
		t.Errorf("Run took %v", d)
	}
}

func TestRunStartErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	notExec := filepath.Join(dir, "notexec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		hook specs.Hook
		want string
		is   error
	}{
		{"missing binary", specs.Hook{Path: missing},
			"createContainer hook #0 (" + missing + "): fork/exec " + missing + ": no such file or directory", fs.ErrNotExist},
		{"not executable", specs.Hook{Path: notExec},
			"createContainer hook #0 (" + notExec + "): fork/exec " + notExec + ": permission denied", fs.ErrPermission},
		{"relative path", specs.Hook{Path: "hook"},
			"createContainer hook #0 (hook): path is not absolute", ErrHookFailed},
		{"zero timeout", specs.Hook{Path: missing, Timeout: new(0)},
			"createContainer hook #0 (" + missing + "): timeout 0s is not positive", ErrHookFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), CreateContainer, []specs.Hook{tt.hook}, testState)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			if !errors.Is(err, tt.is) || !errors.Is(err, ErrHookFailed) {
				t.Errorf("error %q: want %v and ErrHookFailed", err, tt.is)
			}
		})
	}
}
