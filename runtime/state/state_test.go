package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidateID(t *testing.T) {
	engineID := "f2c37f2f89e06da316b5f181ee482ff3dc561a2259fd31faa880c02ae4b8248b" // podman's
	for _, id := range []string{"a", "abc-DEF_1.2+3", engineID, strings.Repeat("x", maxIDLen)} {
		if err := ValidateID(id); err != nil {
			t.Errorf("%q rejected: %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "a/b", "../x", "a b", "a\x00", strings.Repeat("x", maxIDLen+1), "é"} {
		if err := ValidateID(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("%q accepted: %v", id, err)
		}
	}
}

func TestCreateOnceUnderRace(t *testing.T) {
	s := Store{Root: filepath.Join(t.TempDir(), "root")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, exists := 0, 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Create("c1")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrExist):
				exists++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || exists != 15 {
		t.Fatalf("wins=%d exists=%d", wins, exists)
	}
}

func TestSaveLoadListRemove(t *testing.T) {
	s := Store{Root: t.TempDir()}
	if _, err := s.Open("nope"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("open of unknown: %v", err)
	}
	d, err := s.Create("c1")
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.List(); len(ids) != 0 {
		t.Fatalf("a container without state is listed: %v", ids)
	}
	c := &Container{ID: "c1", Bundle: "/b", Created: time.Now().UTC().Round(0), MonitorPid: 42}
	if err := d.Save(c); err != nil {
		t.Fatal(err)
	}
	got, err := d.Load()
	if err != nil || got.Bundle != "/b" || got.MonitorPid != 42 || !got.Created.Equal(c.Created) {
		t.Fatalf("load: %+v %v", got, err)
	}
	if ids, _ := s.List(); len(ids) != 1 || ids[0] != "c1" {
		t.Fatalf("list: %v", ids)
	}
	if ents, _ := os.ReadDir(d.Path); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := os.WriteFile(d.File(StateFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(); err == nil || !strings.Contains(err.Error(), "delete --force") {
		t.Fatalf("corrupt state: %v", err)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open("c1"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("after remove: %v", err)
	}
}

func TestLockExcludes(t *testing.T) {
	s := Store{Root: t.TempDir()}
	d, err := s.Create("c1")
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := d.Lock()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		u, err := d.Lock()
		if err == nil {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("second lock taken while the first is held")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("lock not released")
	}
}
