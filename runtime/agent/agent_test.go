package agent

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: TypeHello, Session: 0, Payload: []byte(`{"version":1}`)},
		{Type: TypeStdout, Session: 7, Payload: bytes.Repeat([]byte{0, 0xff, '\n'}, 1000)},
		{Type: TypeStart, Session: SessionAll},
	}
	var buf []byte
	for _, f := range frames {
		var err error
		if buf, err = AppendFrame(buf, f); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(buf)
	for i, want := range frames {
		got, err := ReadFrame(r)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || got.Session != want.Session || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %+v want %+v", i, got, want)
		}
	}
	if _, err := ReadFrame(r); err != io.EOF {
		t.Fatalf("after last frame: %v, want EOF", err)
	}
}

func header(magic0, magic1, version, typ byte, length uint32) []byte {
	return []byte{magic0, magic1, version, typ, 0, 0, 0, 1, byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length)}
}

func TestReadFrameRejects(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"magic", header('X', 'V', Version, byte(TypeHello), 0), ErrBadMagic},
		{"version", header('V', 'X', Version+1, byte(TypeHello), 0), ErrBadVersion},
		{"type zero", header('V', 'X', Version, 0, 0), ErrBadType},
		{"type unknown", header('V', 'X', Version, byte(typeEnd), 0), ErrBadType},
		{"too large", header('V', 'X', Version, byte(TypeStdout), MaxPayload+1), ErrTooLarge},
		{"huge", header('V', 'X', Version, byte(TypeStdout), 0xffffffff), ErrTooLarge},
		{"short payload", append(header('V', 'X', Version, byte(TypeStdout), 10), 1, 2), io.ErrUnexpectedEOF},
		{"short header", []byte{'V', 'X', Version}, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(c.in))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestAppendFrameRejects(t *testing.T) {
	if _, err := AppendFrame(nil, Frame{Type: TypeStdout, Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	if _, err := AppendFrame(nil, Frame{Type: 0}); !errors.Is(err, ErrBadType) {
		t.Fatalf("type 0: %v", err)
	}
}

func TestDecoders(t *testing.T) {
	if s, err := DecodeSignal(EncodeSignal(9)); err != nil || s != 9 {
		t.Fatalf("signal: %d %v", s, err)
	}
	for _, p := range [][]byte{EncodeSignal(0), EncodeSignal(65), {1, 2}} {
		if _, err := DecodeSignal(p); !errors.Is(err, ErrBadPayload) {
			t.Fatalf("signal %v accepted", p)
		}
	}
	w := Winsize{Rows: 24, Cols: 80}
	if got, err := DecodeWinsize(EncodeWinsize(w)); err != nil || got != w {
		t.Fatalf("winsize: %v %v", got, err)
	}
	if n, err := DecodeCount(EncodeCount(5), 10); err != nil || n != 5 {
		t.Fatalf("count: %d %v", n, err)
	}
	if _, err := DecodeCount(EncodeCount(11), 10); !errors.Is(err, ErrBadPayload) {
		t.Fatal("count above limit accepted")
	}
	exits := map[string]bool{
		`{"code":0}`: true, `{"code":255}`: true, `{"signal":9}`: true,
		`{"code":256}`: false, `{"code":-1}`: false, `{"signal":65}`: false,
		`{"code":1,"signal":9}`: false, `{"code":1} x`: false, `nope`: false,
	}
	for in, ok := range exits {
		if _, err := DecodeExit([]byte(in)); (err == nil) != ok {
			t.Errorf("DecodeExit(%s): %v", in, err)
		}
	}
	if e := (Exit{Signal: 9}); e.Status() != 137 {
		t.Errorf("status of SIGKILL: %d", e.Status())
	}
	if _, err := DecodeStarted([]byte(`{"pid":0}`)); err == nil {
		t.Error("pid 0 accepted")
	}
	e, err := DecodeError([]byte(`{"message":"bad\u001b[31m\nthing` + strings.Repeat("x", 10000) + `"}`))
	if err != nil || len(e.Message) > MaxErrorLen || strings.ContainsAny(e.Message, "\x1b\n") {
		t.Errorf("error message not sanitised: %q %v", e.Message[:20], err)
	}
	if _, err := DecodePsReply([]byte(`{"processes":[{"pid":-1,"command":"x"}]}`)); err == nil {
		t.Error("negative pid accepted")
	}
}

func TestConnConcurrentSend(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := NewConn(a), NewConn(b)
	const senders, each = 8, 50
	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < each; j++ {
				if err := ca.Send(TypeStdout, uint32(i), bytes.Repeat([]byte{byte(i)}, 100+j)); err != nil {
					t.Error(err)
					return
				}
			}
		}(i)
	}
	counts := map[uint32]int{}
	for n := 0; n < senders*each; n++ {
		f, err := cb.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Payload) != 100+counts[f.Session] || f.Payload[0] != byte(f.Session) {
			t.Fatalf("interleaved frame: session %d len %d", f.Session, len(f.Payload))
		}
		counts[f.Session]++
	}
	wg.Wait()
	ca.Close()
	cb.Close()
}

// FuzzReadFrame feeds arbitrary bytes to the decoder the monitor uses on
// guest output: it must never panic, never allocate past MaxPayload, and
// every frame it accepts must re-encode to the same bytes.
func FuzzReadFrame(f *testing.F) {
	seed, _ := AppendFrame(nil, Frame{Type: TypeExit, Session: 0, Payload: []byte(`{"code":3}`)})
	f.Add(seed)
	f.Add(header('V', 'X', Version, byte(TypeStdout), 3))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			start := len(data) - r.Len()
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(fr.Payload) > MaxPayload {
				t.Fatalf("payload of %d bytes accepted", len(fr.Payload))
			}
			enc, err := AppendFrame(nil, fr)
			if err != nil {
				t.Fatalf("accepted frame does not re-encode: %v", err)
			}
			if !bytes.Equal(enc, data[start:start+len(enc)]) {
				t.Fatal("re-encoded frame differs from input")
			}
			// The payload decoders must not panic on anything.
			_, _ = DecodeExit(fr.Payload)
			_, _ = DecodeError(fr.Payload)
			_, _ = DecodeStarted(fr.Payload)
			_, _ = DecodePsReply(fr.Payload)
			_, _ = DecodeSignal(fr.Payload)
			_, _ = DecodeWinsize(fr.Payload)
			_, _ = DecodeCount(fr.Payload, StdinWindow)
		}
	})
}
