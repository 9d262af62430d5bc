package main

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

func TestSharesByMount(t *testing.T) {
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind"}},
		{Destination: "/ro", Source: "/srv/ro", Options: []string{"bind", "ro"}},
	}}
	good := []agent.Share{{Tag: "vol0", Mount: 1}, {Tag: "vol1", Mount: 2}}
	got, err := sharesByMount(&agent.Config{Spec: spec, Shares: good})
	if err != nil || len(got) != 2 || got[1] != "vol0" || got[2] != "vol1" {
		t.Errorf("sharesByMount = %v, %v", got, err)
	}
	for name, shares := range map[string][]agent.Share{
		"not a bind":     {{Tag: "vol0", Mount: 0}},
		"out of range":   {{Tag: "vol0", Mount: 3}},
		"negative":       {{Tag: "vol0", Mount: -1}},
		"no tag":         {{Tag: "", Mount: 1}},
		"long tag":       {{Tag: strings.Repeat("v", 32), Mount: 1}},
		"comma in tag":   {{Tag: "a,trans=fd", Mount: 1}},
		"same tag":       {{Tag: "vol0", Mount: 1}, {Tag: "vol0", Mount: 2}},
		"same mount":     {{Tag: "vol0", Mount: 1}, {Tag: "vol1", Mount: 1}},
		"too many":       make([]agent.Share, agent.MaxShares+1),
		"slash in tag":   {{Tag: "a/b", Mount: 1}},
		"NUL in the tag": {{Tag: "a\x00", Mount: 1}},
	} {
		if _, err := sharesByMount(&agent.Config{Spec: spec, Shares: shares}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestHostSharesFlag(t *testing.T) {
	h := hostShares{}
	if err := h.Set("vol0=/srv/data"); err != nil || h["vol0"] != "/srv/data" {
		t.Errorf("Set: %v, %v", h, err)
	}
	for _, bad := range []string{"vol0", "=/srv", "vol0=relative"} {
		if err := h.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
