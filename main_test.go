package main

import "testing"

func TestIsHotplugCall(t *testing.T) {
	env := map[string]string{"XENBUS_PATH": "backend/vbd/1/51712", "XENBUS_TYPE": "vbd"}
	getenv := func(k string) string { return env[k] }
	if !isHotplugCall([]string{"/usr/bin/vxn", "add"}, getenv) {
		t.Error("libxl's call not recognised")
	}
	vif := map[string]string{"XENBUS_PATH": "backend/vif/1/0", "XENBUS_TYPE": "vif"}
	if !isHotplugCall([]string{"/usr/bin/vxn", "online", "type_if=vif"}, func(k string) string { return vif[k] }) {
		t.Error("libxl's call for a vif not recognised")
	}
	if isHotplugCall([]string{"/usr/bin/vxn", "state", "x"}, getenv) {
		t.Error("a command with arguments taken for a hotplug call")
	}
	if isHotplugCall([]string{"/usr/bin/vxn", "list"}, func(string) string { return "" }) {
		t.Error("a command without libxl's environment taken for a hotplug call")
	}
}
