package xenstore

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"", "a\x00b", strings.Repeat("a", 3073)} {
		if err := checkPath(p); err == nil {
			t.Errorf("checkPath(%q) accepted", p)
		}
	}
	if err := checkPath("/local/domain/0/backend/vbd/1/51712/params"); err != nil {
		t.Error(err)
	}
}

// TestReadWrite needs a running xenstored (a Xen dom0); elsewhere it checks
// that Open fails with an error that says what is missing.
func TestReadWrite(t *testing.T) {
	h, err := Open()
	if err != nil {
		if _, serr := os.Stat("/proc/xen/capabilities"); serr == nil {
			t.Fatal(err)
		}
		if !strings.Contains(err.Error(), "xenstored") {
			t.Errorf("error %q does not say what is missing", err)
		}
		return
	}
	defer h.Close()
	const key = "/vxn-xenstore-test"
	if err := h.Write(key, "v\x01"); err != nil {
		t.Fatal(err)
	}
	if v, err := h.Read(key); err != nil || v != "v\x01" {
		t.Fatalf("Read = %q, %v", v, err)
	}
	if _, err := h.Read(key + "/missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read of a missing key: %v", err)
	}
	if err := h.Write(key, strings.Repeat("x", MaxValue+1)); err == nil {
		t.Error("oversized write accepted")
	}
}
