package xtl

import (
	"strings"
	"sync"
	"testing"
)

func TestLoggerRoutesAndFilters(t *testing.T) {
	var mu sync.Mutex
	var got []string
	l := NewLogger(Info, func(level Level, msg string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, level.String()+"|"+msg)
	})
	defer l.Close()

	l.Log(Debug, "hidden")
	l.Log(Error, "visible %s 100%") // no format expansion of the message
	long := strings.Repeat("x", 5000)
	l.Log(Warn, long)

	want := []string{"error|visible %s 100%", "warning|" + long}
	if len(got) != len(want) {
		t.Fatalf("got %d messages %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d = %.60q, want %.60q", i, got[i], want[i])
		}
	}
}

func TestWriterLog(t *testing.T) {
	var b strings.Builder
	l := NewLogger(Debug, WriterLog(&b))
	l.Log(Critical, "libxl: boom")
	l.Close()
	l.Close() // idempotent
	if b.String() != "critical: libxl: boom\n" {
		t.Fatalf("got %q", b.String())
	}
}

func TestLevelString(t *testing.T) {
	if Warn.String() != "warning" || Level(42).String() != "level(42)" {
		t.Fatal(Warn.String(), Level(42).String())
	}
}
