package guestkernel

import (
	"os"
	"path/filepath"
	"testing"
)

func TestVersionLess(t *testing.T) {
	sorted := []string{"5.10.0-9-amd64", "6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-56-amd64", "6.12.0-1-amd64"}
	for i := range sorted {
		for j := range sorted {
			if got := VersionLess(sorted[i], sorted[j]); got != (i < j) {
				t.Errorf("VersionLess(%s, %s) = %v", sorted[i], sorted[j], got)
			}
		}
	}
}

func TestNewest(t *testing.T) {
	boot := t.TempDir()
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-60-cloud-amd64", "6.1.0-70-rt-amd64", "6.1.0-10-amd64"} {
		if err := os.WriteFile(filepath.Join(boot, "vmlinuz-"+v), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, v, err := Newest(boot)
	if err != nil || v != "6.1.0-56-amd64" || p != filepath.Join(boot, "vmlinuz-6.1.0-56-amd64") {
		t.Errorf("Newest = %q, %q, %v", p, v, err)
	}
	only := t.TempDir()
	if err := os.WriteFile(filepath.Join(only, "vmlinuz-6.1.0-56-cloud-amd64"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Newest(only); err == nil {
		t.Error("no error with only a cloud kernel")
	}
}
