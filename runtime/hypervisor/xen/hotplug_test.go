package xen

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHotplugRefusesForeignCalls(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"XENBUS_TYPE": "vbd", "XENBUS_PATH": "backend/vbd/1/51712/../../x"},
		{"XENBUS_TYPE": "vif", "XENBUS_PATH": "backend/vbd/1/51712"},
		{"XENBUS_TYPE": "qdisk", "XENBUS_PATH": "backend/qdisk/1/51712"},
	} {
		if err := Hotplug("add", func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "libxl") {
			t.Errorf("%v: %v", env, err)
		}
	}
	vbd := map[string]string{"XENBUS_TYPE": "vbd", "XENBUS_PATH": "backend/vbd/3/51712"}
	if err := Hotplug("online", func(k string) string { return vbd[k] }); err == nil || !strings.Contains(err.Error(), "unknown action") {
		t.Errorf("vbd online: %v", err)
	}
	// Removal and vif actions need nothing from xenstore.
	if err := Hotplug("remove", func(k string) string { return vbd[k] }); err != nil {
		t.Error(err)
	}
	vif := map[string]string{"XENBUS_TYPE": "vif", "XENBUS_PATH": "backend/vif/3/0", "vif": "vif3.0"}
	for _, a := range []string{"online", "offline", "add", "remove"} {
		if err := Hotplug(a, func(k string) string { return vif[k] }); err != nil {
			t.Errorf("vif %s: %v", a, err)
		}
	}
}

func TestBlockDevice(t *testing.T) {
	f := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := blockDevice(f); !errors.Is(err, errNotBlock) {
		t.Errorf("regular file: %v", err)
	}
	if _, _, err := blockDevice("dev/loop0"); err == nil {
		t.Error("relative path accepted")
	}
	if _, err := os.Stat("/dev/loop0"); err == nil {
		if maj, _, err := blockDevice("/dev/loop0"); err != nil || maj != 7 {
			t.Errorf("/dev/loop0: major %d, %v", maj, err)
		}
	}
}
