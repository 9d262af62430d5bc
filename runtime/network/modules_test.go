package network

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestMissingModules(t *testing.T) {
	dir := t.TempDir()
	sys, mods := filepath.Join(dir, "sys"), filepath.Join(dir, "lib")
	for _, d := range []string{filepath.Join(sys, "xen_netback"), mods} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dep := "kernel/net/sched/cls_u32.ko: \nkernel/net/sched/act_mirred.ko.xz:\n"
	builtin := "kernel/net/sched/sch_ingress.ko\n"
	if err := os.WriteFile(filepath.Join(mods, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mods, "modules.builtin"), []byte(builtin), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := missingModules(sys, mods, append(Modules, "cls_matchall"))
	if err != nil || fmt.Sprint(got) != "[cls_matchall]" {
		t.Errorf("missing %v, %v; want [cls_matchall]", got, err)
	}
	if _, err := missingModules(sys, filepath.Join(dir, "none"), Modules); err == nil {
		t.Error("no module lists: no error")
	}
}
