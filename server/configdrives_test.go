package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/configdrive"
	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

const drivesTopo = `routers:
  - {name: r1, project: demo}
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, router: r1}
instances:
  - name: vm1
    project: demo
    network: net1
    ip: 10.90.1.5
    user_data: "#cloud-config\n"
    config_drive: true
    admin_pass: hunter2
  - name: vm2
    project: demo
    network: net1
    ip: 10.90.1.6
`

// drives lists the drive files in dir by instance name, e.g. "vm1.iso".
func drives(t *testing.T, dir string, names map[string]string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		for id, name := range names {
			n = strings.Replace(n, id, name, 1)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond for up to 20 seconds; the loop polls every 20ms, so a
// pass takes far less, but a slow machine must not fail the test.
func waitFor(t *testing.T, what string, cond func() bool, errc <-chan error) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		select {
		case err := <-errc:
			t.Fatalf("serve stopped while waiting for %s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func readDrive(t *testing.T, path string) map[string]string {
	t.Helper()
	img, err := configdrive.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{"format": img.Format, "label": img.Label}
	for _, f := range img.Files {
		out[f.Path] = string(f.Data)
	}
	return out
}

func TestConfigDriveComponent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dataDir := t.TempDir()
	st, err := store.Open(dataDir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	topo, err := topology.Parse([]byte(drivesTopo), "drives.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topology.Apply(ctx, st, topo); err != nil {
		t.Fatal(err)
	}
	vm1, err := st.GetInstance(ctx, "vm1")
	if err != nil {
		t.Fatal(err)
	}
	vm2, err := st.GetInstance(ctx, "vm2")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{vm1.ID: "vm1", vm2.ID: "vm2"}
	dir := filepath.Join(dataDir, ConfigDrivesDirName)
	// Files that are not drives of ours are left alone.
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, keep := range []string{"notes.txt", "custom.iso"} {
		if err := os.WriteFile(filepath.Join(dir, keep), []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A leftover of a writer that crashed is swept at start.
	if err := os.WriteFile(filepath.Join(dir, "."+vm1.ID+".iso.tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	comps, err := ParseComponents("configdrive")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Options{Store: st, DataDir: dataDir, Components: comps, Poll: 20 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)})
	}()
	same := func(want ...string) func() bool {
		return func() bool { return slices.Equal(drives(t, dir, names), want) }
	}

	// Only the instance that asks for a drive gets one, iso9660 by default.
	waitFor(t, "vm1.iso", same("custom.iso", "notes.txt", "vm1.iso"), errc)
	vm1ISO := filepath.Join(dir, vm1.ID+".iso")
	d := readDrive(t, vm1ISO)
	if d["format"] != configdrive.FormatISO9660 || d["label"] != configdrive.Label ||
		d["openstack/latest/user_data"] != "#cloud-config\n" || !strings.Contains(d["openstack/latest/meta_data.json"], `"admin_pass": "hunter2"`) {
		t.Errorf("vm1's drive: %v", d)
	}
	before, err := os.Stat(vm1ISO)
	if err != nil {
		t.Fatal(err)
	}

	// force_config_drive gives every instance one; vm1's is not rewritten
	// (its contents did not change, whatever its random_seed).
	must(t, st.SetSetting(ctx, "force_config_drive", "true"))
	waitFor(t, "vm2.iso", same("custom.iso", "notes.txt", "vm1.iso", "vm2.iso"), errc)
	after, err := os.Stat(vm1ISO)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Errorf("vm1's drive was rewritten though nothing it holds changed")
	}

	// The format flips: every drive moves to .img, the .iso files go.
	must(t, st.SetSetting(ctx, "config_drive_format", "vfat"))
	waitFor(t, "vfat drives", same("custom.iso", "notes.txt", "vm1.img", "vm2.img"), errc)
	if d := readDrive(t, filepath.Join(dir, vm2.ID+".img")); d["format"] != configdrive.FormatVFAT || d["label"] != configdrive.Label {
		t.Errorf("vm2's drive after the flip: %s labelled %q", d["format"], d["label"])
	}

	// force off again: vm2 loses its drive, vm1 keeps the one it asked for.
	must(t, st.SetSetting(ctx, "force_config_drive", "false"))
	waitFor(t, "vm2.img removed", same("custom.iso", "notes.txt", "vm1.img"), errc)

	// New user data rebuilds vm1's drive.
	vm1, err = st.GetInstance(ctx, vm1.ID)
	if err != nil {
		t.Fatal(err)
	}
	vm1.UserData = []byte("#!/bin/sh\necho changed\n")
	must(t, st.PutInstance(ctx, vm1))
	vm1IMG := filepath.Join(dir, vm1.ID+".img")
	waitFor(t, "vm1's drive rebuilt with the new user data", func() bool {
		img, err := configdrive.Read(vm1IMG)
		if err != nil {
			return false
		}
		for _, f := range img.Files {
			if f.Path == "openstack/latest/user_data" {
				return string(f.Data) == "#!/bin/sh\necho changed\n"
			}
		}
		return false
	}, errc)

	// A drive deleted by hand comes back (on the periodic resync at the
	// latest; here the next store write also triggers it).
	must(t, os.Remove(vm1IMG))
	must(t, st.SetSetting(ctx, "metadata_cache_expiration", "20"))
	waitFor(t, "vm1.img restored", same("custom.iso", "notes.txt", "vm1.img"), errc)

	// A deleted instance loses its drive.
	_, err = topology.DeleteInstance(ctx, st, "vm1")
	must(t, err)
	waitFor(t, "vm1.img removed", same("custom.iso", "notes.txt"), errc)

	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDriveID(t *testing.T) {
	tests := []struct {
		name, id string
		ok       bool
	}{
		{"8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21.iso", "8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21", true},
		{"8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21.img", "8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21", true},
		{"8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21.raw", "", false},
		{".8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21.iso.tmp-1", "", false},
		{"custom.iso", "", false},
		{"8b0a3fd4x2c0e-4d8b-9a4b-0d0c6a1f3e21.iso", "", false},
		{"8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e2g.img", "", false},
	}
	for _, tt := range tests {
		id, ok := driveID(tt.name)
		if id != tt.id || ok != tt.ok {
			t.Errorf("driveID(%q) = %q, %v; want %q, %v", tt.name, id, ok, tt.id, tt.ok)
		}
	}
}

func TestConfigDriveHashIgnoresSeed(t *testing.T) {
	v := store.InstanceView{Instance: store.Instance{ID: "8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21", Name: "vm1", UserData: []byte("x")}}
	cfg, err := store.ParseConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	build := func() string {
		files, err := ConfigDriveFiles(v, cfg, os.ReadFile, nil, time.Now(), zeroRand{})
		if err != nil {
			t.Fatal(err)
		}
		return hashFiles(files)
	}
	a, b := build(), build()
	if a != b {
		t.Errorf("two builds of the same instance hash differently: %s %s", a, b)
	}
	// And real builds do carry different seeds, which is why the hash
	// must not use them.
	f1, err := ConfigDriveFiles(v, cfg, os.ReadFile, nil, time.Now(), nil)
	must(t, err)
	f2, err := ConfigDriveFiles(v, cfg, os.ReadFile, nil, time.Now(), nil)
	must(t, err)
	if hashFiles(f1) == hashFiles(f2) {
		t.Errorf("two real builds share a random_seed")
	}
	v.Instance.UserData = []byte("y")
	if build() == a {
		t.Errorf("new user data does not change the hash")
	}
}

// TestConfigDriveCarriesDynamicVendordata: a drive's vendor_data2.json holds
// what the DynamicJSON services answered, as the API's does.
func TestConfigDriveCarriesDynamicVendordata(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asked atomic.Int32
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"join": "token-42"}`))
	}))
	defer svc.Close()
	dataDir := t.TempDir()
	st, err := store.Open(dataDir, "")
	must(t, err)
	defer st.Close()
	topo, err := topology.Parse([]byte(drivesTopo), "drives.yaml")
	must(t, err)
	_, err = topology.Apply(ctx, st, topo)
	must(t, err)
	must(t, st.SetSetting(ctx, "vendordata_providers", "StaticJSON,DynamicJSON"))
	must(t, st.SetSetting(ctx, "vendordata_dynamic_targets", "joiner@"+svc.URL))
	vm1, err := st.GetInstance(ctx, "vm1")
	must(t, err)

	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Options{Store: st, DataDir: dataDir, Components: []string{ComponentConfigDrive}, Poll: 20 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)})
	}()
	path := ConfigDrivePath(filepath.Join(dataDir, ConfigDrivesDirName), vm1.ID, "iso9660")
	waitFor(t, "vm1's drive", func() bool { _, err := os.Stat(path); return err == nil }, errc)
	got := readDrive(t, path)["openstack/latest/vendor_data2.json"]
	if !strings.Contains(got, `"joiner": {"join": "token-42"}`) {
		t.Errorf("vendor_data2.json on the drive = %s; want the joiner service's answer", got)
	}
	if asked.Load() == 0 {
		t.Error("the vendordata service was never asked")
	}
}
