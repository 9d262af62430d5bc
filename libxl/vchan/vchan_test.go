package vchan

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgentPath(t *testing.T) {
	if got := AgentPath(7); got != "/local/domain/7/data/vxn-agent" {
		t.Fatal(got)
	}
	if p := AgentPath(^uint32(0)); checkPath(p) != nil {
		t.Fatalf("longest agent path %q rejected", p)
	}
}

func TestPathChecks(t *testing.T) {
	long := "/" + strings.Repeat("x", maxPathLen)
	if _, err := Dial(1, long); err == nil || !strings.Contains(err.Error(), "length") {
		t.Fatalf("Dial with a long path: %v", err)
	}
	if _, err := Listen("", 0); err == nil {
		t.Fatal("Listen with an empty path succeeded")
	}
	if _, err := Listen("data/x", 0, WithRingSize(2<<20)); err == nil || !strings.Contains(err.Error(), "ring size") {
		t.Fatalf("Listen with a 2 MiB ring: %v", err)
	}
}

// Without Xen (no xenstored, no /dev/xen) Dial must fail cleanly, and not
// claim that the server is merely missing.
func TestDialWithoutXen(t *testing.T) {
	if _, err := os.Stat("/dev/xen/gntdev"); err == nil {
		t.Skip("Xen is present")
	}
	_, err := Dial(1, AgentPath(1))
	if err == nil || errors.Is(err, ErrNoServer) {
		t.Fatalf("Dial = %v, want a connection error", err)
	}
}

// TestStaticLink links a program using the server side (the e2e echo
// guest) the way guestinit is linked, and checks that the result is
// static.
func TestStaticLink(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	out := filepath.Join(t.TempDir(), "echoguest")
	cmd := exec.Command(gobin, "build", "-o", out,
		"-ldflags", `-linkmode external -extldflags "-static"`, "./testdata/echoguest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, b)
	} else if len(b) > 0 {
		t.Errorf("static build warned:\n%s", b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("binary has a %v program header: not static", p.Type)
		}
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var vchan, xenlight bool
	for _, s := range syms {
		vchan = vchan || s.Name == "libxenvchan_server_init"
		xenlight = xenlight || strings.HasPrefix(s.Name, "libxl_")
	}
	if !vchan || xenlight {
		t.Fatalf("libxenvchan linked: %v, libxenlight linked: %v", vchan, xenlight)
	}
}
