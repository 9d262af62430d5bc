package libxl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vxn-runtime/vxn/libxl/xtl"
)

func sampleConfig() *DomainConfig {
	return &DomainConfig{
		Name:         "vxn-test",
		UUID:         UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8},
		Type:         TypePVH,
		Kernel:       "/boot/vmlinuz",
		Ramdisk:      "/boot/initrd.img",
		Cmdline:      "console=hvc0 quiet",
		MaxMemKiB:    256 << 10,
		TargetMemKiB: 128 << 10,
		VCPUs:        3,
		TSCMode:      TSCNative,
		Sched:        Sched{Weight: 512, Cap: 150},
		CPUAffinity:  []int{1, 9},
		Disks: []Disk{
			{Path: "/var/lib/vxn/rootfs.img", Vdev: "xvda"},
			{Path: "/dev/vg/data", Vdev: "xvdb", ReadOnly: true, Script: "/usr/bin/vxn"},
		},
		NICs: []NIC{{Bridge: "xenbr0", Script: "vif-vxn", MAC: [6]byte{0x00, 0x16, 0x3e, 1, 2, 3}, MTU: 9000}},
		P9s: []P9{
			{Tag: "vol0", Path: "/srv/data", SecurityModel: "passthrough"},
			{Tag: "vol1", Path: "/srv/ro", SecurityModel: "mapped-xattr"},
		},
	}
}

// libxlJSON is the part of libxl's JSON form of libxl_domain_config that
// the tests look at.
type libxlJSON struct {
	CInfo struct {
		Type string `json:"type"`
		Name string `json:"name"`
		UUID string `json:"uuid"`
	} `json:"c_info"`
	BInfo struct {
		MaxVCPUs    int    `json:"max_vcpus"`
		AvailVCPUs  []int  `json:"avail_vcpus"`
		TSCMode     string `json:"tsc_mode"`
		MaxMemKB    uint64 `json:"max_memkb"`
		TargetMemKB uint64 `json:"target_memkb"`
		Kernel      string `json:"kernel"`
		Cmdline     string `json:"cmdline"`
		Ramdisk     string `json:"ramdisk"`
		CPUMap      []int  `json:"cpumap"`
		Sched       struct {
			Weight int `json:"weight"`
			Cap    int `json:"cap"`
		} `json:"sched_params"`
		// the build_info union is keyed by type
		PV  *struct{} `json:"type.pv"`
		PVH *struct{} `json:"type.pvh"`
	} `json:"b_info"`
	Disks []struct {
		BackendDomid int    `json:"backend_domid"`
		PdevPath     string `json:"pdev_path"`
		Vdev         string `json:"vdev"`
		Backend      string `json:"backend"`
		Format       string `json:"format"`
		Readwrite    int    `json:"readwrite"`
		Script       string `json:"script"`
	} `json:"disks"`
	NICs []struct {
		Bridge  string `json:"bridge"`
		Script  string `json:"script"`
		MAC     string `json:"mac"`
		MTU     int    `json:"mtu"`
		NICType string `json:"nictype"`
	} `json:"nics"`
	P9s []struct {
		Tag           string `json:"tag"`
		Path          string `json:"path"`
		SecurityModel string `json:"security_model"`
		Devid         int    `json:"devid"`
	} `json:"p9s"`
	OnPoweroff string `json:"on_poweroff"`
	OnReboot   string `json:"on_reboot"`
	OnCrash    string `json:"on_crash"`
}

func decode(t *testing.T, cfg *DomainConfig) libxlJSON {
	t.Helper()
	js, err := cfg.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got libxlJSON
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("%v in %s", err, js)
	}
	return got
}

func TestConfigToLibxl(t *testing.T) {
	got := decode(t, sampleConfig())
	ci, bi := got.CInfo, got.BInfo
	if ci.Type != "pvh" || ci.Name != "vxn-test" || ci.UUID != "12345678-9abc-def0-0102-030405060708" {
		t.Errorf("c_info = %+v", ci)
	}
	if bi.PVH == nil || bi.PV != nil || bi.MaxVCPUs != 3 || fmt.Sprint(bi.AvailVCPUs) != "[0 1 2]" ||
		bi.TSCMode != "native" || bi.MaxMemKB != 256<<10 || bi.TargetMemKB != 128<<10 ||
		bi.Kernel != "/boot/vmlinuz" || bi.Ramdisk != "/boot/initrd.img" || bi.Cmdline != "console=hvc0 quiet" {
		t.Errorf("b_info = %+v", bi)
	}
	if fmt.Sprint(bi.CPUMap) != "[1 9]" || bi.Sched.Weight != 512 || bi.Sched.Cap != 150 {
		t.Errorf("cpumap %v, sched_params %+v", bi.CPUMap, bi.Sched)
	}
	if len(got.Disks) != 2 {
		t.Fatalf("disks = %+v", got.Disks)
	}
	d0, d1 := got.Disks[0], got.Disks[1]
	if d0.PdevPath != "/var/lib/vxn/rootfs.img" || d0.Vdev != "xvda" || d0.Readwrite != 1 ||
		d0.Backend != "phy" || d0.Format != "raw" || d0.BackendDomid != 0 {
		t.Errorf("disk 0 = %+v", d0)
	}
	if d0.Script != "" || d1.Vdev != "xvdb" || d1.Readwrite != 0 || d1.Script != "/usr/bin/vxn" {
		t.Errorf("disk 1 = %+v", d1)
	}
	if len(got.NICs) != 1 || got.NICs[0].Bridge != "xenbr0" || got.NICs[0].Script != "vif-vxn" ||
		got.NICs[0].MAC != "00:16:3e:01:02:03" || got.NICs[0].MTU != 9000 || got.NICs[0].NICType != "vif" {
		t.Errorf("nics = %+v", got.NICs)
	}
	if len(got.P9s) != 2 || got.P9s[0].Tag != "vol0" || got.P9s[0].Path != "/srv/data" ||
		got.P9s[0].SecurityModel != "passthrough" || got.P9s[0].Devid != 0 ||
		got.P9s[1].Tag != "vol1" || got.P9s[1].SecurityModel != "mapped-xattr" || got.P9s[1].Devid != 1 {
		t.Errorf("p9s = %+v", got.P9s)
	}
	// libxl's JSON leaves out values equal to the defaults (destroy)
	if got.OnPoweroff != "" || got.OnReboot != "" || got.OnCrash != "preserve" {
		t.Errorf("actions = %s %s %s", got.OnPoweroff, got.OnReboot, got.OnCrash)
	}
}

func TestConfigDefaults(t *testing.T) {
	got := decode(t, &DomainConfig{Name: "d", Kernel: "/k", MaxMemKiB: 1024})
	if got.CInfo.Type != "pv" || got.BInfo.PV == nil {
		t.Errorf("type = %q, want pv", got.CInfo.Type)
	}
	if got.BInfo.MaxVCPUs != 1 || fmt.Sprint(got.BInfo.AvailVCPUs) != "[0]" {
		t.Errorf("vcpus = %d %v", got.BInfo.MaxVCPUs, got.BInfo.AvailVCPUs)
	}
	if got.BInfo.TargetMemKB != 1024 {
		t.Errorf("target = %d, want the maximum", got.BInfo.TargetMemKB)
	}
	if got.BInfo.Ramdisk != "" || got.BInfo.TSCMode != "" || len(got.Disks) != 0 || len(got.NICs) != 0 || len(got.P9s) != 0 {
		t.Errorf("unexpected fields: %+v", got)
	}
}

func TestConfigValidation(t *testing.T) {
	for name, mod := range map[string]func(*DomainConfig){
		"no name":      func(c *DomainConfig) { c.Name = "" },
		"no kernel":    func(c *DomainConfig) { c.Kernel = "" },
		"no memory":    func(c *DomainConfig) { c.MaxMemKiB, c.TargetMemKiB = 0, 0 },
		"target > max": func(c *DomainConfig) { c.TargetMemKiB = c.MaxMemKiB + 1 },
		"vcpus":        func(c *DomainConfig) { c.VCPUs = -1 },
		"type":         func(c *DomainConfig) { c.Type = 7 },
		"disk vdev":    func(c *DomainConfig) { c.Disks[1].Vdev = "" },
		"NUL":          func(c *DomainConfig) { c.Cmdline = "a\x00b" },
		"NUL in nic":   func(c *DomainConfig) { c.NICs[0].Bridge = "a\x00b" },
		"nic mtu":      func(c *DomainConfig) { c.NICs[0].MTU = 65536 },
		"weight":       func(c *DomainConfig) { c.Sched.Weight = 70000 },
		"cap":          func(c *DomainConfig) { c.Sched.Cap = -1 },
		"cpu":          func(c *DomainConfig) { c.CPUAffinity = []int{-1} },
		"p9 no tag":    func(c *DomainConfig) { c.P9s[0].Tag = "" },
		"p9 long tag":  func(c *DomainConfig) { c.P9s[0].Tag = strings.Repeat("t", 32) },
		"p9 comma":     func(c *DomainConfig) { c.P9s[0].Tag = "a,b" },
		"p9 same tag":  func(c *DomainConfig) { c.P9s[1].Tag = c.P9s[0].Tag },
		"p9 relative":  func(c *DomainConfig) { c.P9s[0].Path = "srv/data" },
		"p9 model":     func(c *DomainConfig) { c.P9s[0].SecurityModel = "" },
		"p9 NUL":       func(c *DomainConfig) { c.P9s[1].Path = "/a\x00b" },
	} {
		cfg := sampleConfig()
		mod(cfg)
		if _, err := cfg.JSON(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestUUID(t *testing.T) {
	a, b := NewUUID(), NewUUID()
	if a == (UUID{}) || a == b {
		t.Fatalf("NewUUID gave %v and %v", a, b)
	}
	s := a.String()
	if len(s) != 36 || strings.Count(s, "-") != 4 {
		t.Fatalf("UUID string %q", s)
	}
}

func TestErrors(t *testing.T) {
	err := error(&Error{Op: "domain_destroy", Domid: 7, Code: -21})
	if got := err.Error(); got != "libxl: domain_destroy (domain 7): ERROR_DOMAIN_NOTFOUND" {
		t.Errorf("Error() = %q", got)
	}
	wrapped := fmt.Errorf("xen: %w", err)
	if !errors.Is(wrapped, ErrDomainNotFound) || errors.Is(wrapped, ErrFail) {
		t.Error("errors.Is does not match by code")
	}
	var le *Error
	if !errors.As(wrapped, &le) || le.Domid != 7 {
		t.Error("errors.As failed")
	}
	if got := (&Error{Op: "list_domain", Domid: NoDomid, Code: -3}).Error(); got != "libxl: list_domain: ERROR_FAIL" {
		t.Errorf("Error() = %q", got)
	}
	if got := ErrTimedOut.Error(); got != "libxl: ERROR_TIMEDOUT" {
		t.Errorf("sentinel Error() = %q", got)
	}
	if got := CodeName(-1000); got != "libxl error -1000" {
		t.Errorf("CodeName(-1000) = %q", got)
	}
}

func TestShutdownReasonString(t *testing.T) {
	for r, want := range map[ShutdownReason]string{
		ShutdownPoweroff: "poweroff", ShutdownReboot: "reboot", ShutdownCrash: "crash",
		ShutdownDestroyed: "destroyed", ShutdownUnknown: "unknown", ShutdownReason(99): "shutdown reason 99",
	} {
		if r.String() != want {
			t.Errorf("%d: %q, want %q", int(r), r.String(), want)
		}
	}
}

// Without Xen, New fails with a libxl error, and what libxl has to say
// about it goes to our logger.
func TestNewWithoutXen(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	lg := xtl.NewLogger(xtl.Debug, func(_ xtl.Level, m string) {
		mu.Lock()
		defer mu.Unlock()
		msgs = append(msgs, m)
	})
	defer lg.Close()
	c, err := New(lg)
	if err == nil {
		c.Close()
		t.Skip("Xen is running here")
	}
	var le *Error
	if !errors.As(err, &le) || le.Op != "ctx_alloc" {
		t.Fatalf("New = %v, want a ctx_alloc *Error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(msgs) == 0 {
		t.Error("libxl logged nothing to the Go logger")
	}
	t.Logf("%v; logged %q", err, msgs)
}

func TestRenameDomainChecksNames(t *testing.T) {
	var c Context // closed: a call that got past the checks would say ErrClosed
	for _, names := range [][2]string{{"", "vxn-a"}, {"vxnpool-1", ""}, {"a\x00b", "vxn-a"}, {"vxnpool-1", "vxn-\x00"}} {
		if err := c.RenameDomain(1, names[0], names[1]); err == nil || errors.Is(err, ErrClosed) {
			t.Errorf("rename %q to %q: %v", names[0], names[1], err)
		}
	}
	if err := c.RenameDomain(1, "vxnpool-1", "vxn-a"); !errors.Is(err, ErrClosed) {
		t.Errorf("valid names: %v, want ErrClosed", err)
	}
}
