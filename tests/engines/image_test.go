package engines

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// busybox is the static busybox the image is made of (busybox-static).
const busybox = "/bin/busybox"

// writeImageArchive writes a one-layer busybox image as a docker-archive
// tarball (the `docker save` format), which `podman load`, `docker load`
// and `ctr image import` all read, tagged ref.
func writeImageArchive(path, ref string) error {
	layer, err := busyboxLayer()
	if err != nil {
		return err
	}
	layerSum := sha256.Sum256(layer)
	layerID := hex.EncodeToString(layerSum[:])
	epoch := time.Unix(0, 0).UTC()
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch,
		"config": map[string]any{
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Cmd": []string{"sh"},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerID}},
		"history": []map[string]any{{"created": epoch, "created_by": "vxn engine tests: busybox-static"}},
	})
	if err != nil {
		return err
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	manifest, err := json.Marshal([]map[string]any{{
		"Config":   configName,
		"RepoTags": []string{ref},
		"Layers":   []string{layerID + "/layer.tar"},
	}})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name string
		data []byte
	}{
		{layerID + "/", nil},
		{layerID + "/layer.tar", layer},
		{configName, config},
		{"manifest.json", manifest},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch, Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Mode, h.Typeflag = 0o755, tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// busyboxLayer is the image's root filesystem as a tar: busybox with a
// link for each of its applets, /etc/passwd and /etc/group, and the
// directories a container needs.
func busyboxLayer() ([]byte, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("reading %s (install busybox-static): %w", busybox, err)
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	epoch := time.Unix(0, 0).UTC()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) error {
		h.ModTime, h.Size = epoch, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"dev/", 0o755}, {"etc/", 0o755}, {"proc/", 0o555}, {"root/", 0o700}, {"run/", 0o755}, {"sys/", 0o555}, {"tmp/", 0o1777}} {
		if err := add(&tar.Header{Name: d.name, Mode: d.mode, Typeflag: tar.TypeDir}, nil); err != nil {
			return nil, err
		}
	}
	if err := add(&tar.Header{Name: "bin/busybox", Mode: 0o755, Typeflag: tar.TypeReg}, bb); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := add(&tar.Header{Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, Typeflag: tar.TypeSymlink}, nil); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for _, name := range []string{"etc/group", "etc/passwd"} {
		if err := add(&tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg}, []byte(files[name])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// TestImageArchive checks the archive the engines load: its manifest
// names the config and the layer, the config's diff_id is the layer's
// digest, and the layer holds busybox with its applets and /etc/passwd.
func TestImageArchive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := writeImageArchive(path, image); err != nil {
		t.Fatal(err)
	}
	archive, _ := readTar(t, mustRead(t, path))
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(archive["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || len(manifest[0].RepoTags) != 1 || manifest[0].RepoTags[0] != image || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json: %+v", manifest)
	}
	var config struct {
		Architecture, OS string
		RootFS           struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(archive[manifest[0].Config], &config); err != nil {
		t.Fatalf("config %s: %v", manifest[0].Config, err)
	}
	layer, ok := archive[manifest[0].Layers[0]]
	if !ok {
		t.Fatalf("no layer %s in the archive", manifest[0].Layers[0])
	}
	sum := sha256.Sum256(layer)
	if config.Architecture != "amd64" || config.OS != "linux" || len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("config: %+v, want amd64/linux and the layer's digest %x", config, sum)
	}
	configSum := sha256.Sum256(archive[manifest[0].Config])
	if manifest[0].Config != hex.EncodeToString(configSum[:])+".json" {
		t.Errorf("config file %s is not named after its digest", manifest[0].Config)
	}
	files, links := readTar(t, layer)
	if bb := files["bin/busybox"]; len(bb) == 0 || !bytes.Equal(bb, mustRead(t, busybox)) {
		t.Errorf("bin/busybox is not %s", busybox)
	}
	if !strings.HasPrefix(string(files["etc/passwd"]), "root:x:0:0:") {
		t.Errorf("etc/passwd: %q", files["etc/passwd"])
	}
	for _, applet := range []string{"sh", "sleep", "uname", "stty", "tty"} {
		if got, ok := links[applet]; !ok || got != "busybox" {
			t.Errorf("bin/%s: link to %q, want busybox", applet, got)
		}
	}
}

// readTar returns a tar's regular files and its symlinks' targets by name.
func readTar(t *testing.T, data []byte) (files map[string][]byte, links map[string]string) {
	t.Helper()
	files, links = map[string][]byte{}, map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, links
		}
		if err != nil {
			t.Fatalf("reading a tar: %v", err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		case tar.TypeSymlink:
			links[strings.TrimPrefix(h.Name, "bin/")] = h.Linkname
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
