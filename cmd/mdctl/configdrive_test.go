package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/judge"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/agent"
	"github.com/mdctl/mdctl/server/api"
	"github.com/mdctl/mdctl/server/configdrive"
	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/store"
)

// cdTopo has one instance that asks for a drive (with an admin password and
// user data) and one that does not; %s is the vendordata file.
const cdTopo = `settings:
  metadata_proxy_shared_secret: cd-secret
  vendordata_jsonfile_path: %s
routers:
  - {name: r1, project: demo}
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, router: r1}
instances:
  - name: vm1
    project: demo
    network: net1
    ip: 10.90.1.5
    user_data: |
      #cloud-config
      runcmd: [echo hi]
    public_keys: {default: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGp demo@mdctl"}
    meta: {role: web}
    config_drive: true
    admin_pass: hunter2
  - name: vm2
    project: demo
    network: net1
    ip: 10.90.1.6
`

// seedDrives applies cdTopo to a fresh store and returns its opener.
func seedDrives(t *testing.T) (func(context.Context) (store.Store, error), string) {
	t.Helper()
	open, dir := storeAt(t)
	vendor := filepath.Join(dir, "vendor.json")
	if err := os.WriteFile(vendor, []byte(`{"motd": "from the vendor"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ios, in, _, _ := testIO()
	in.WriteString(strings.Replace(cdTopo, "%s", vendor, 1))
	if err := applyRun(context.Background(), &applyOptions{IO: ios, Store: open, File: "-", Output: "table"}); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return open, dir
}

// apiGetter answers GETs through the real API handler over loopback HTTP,
// as the agent would ask: signed X-Instance-ID, tenant and guest address.
func apiGetter(t *testing.T, st store.Store, view store.InstanceView) func(path string) []byte {
	t.Helper()
	srv := httptest.NewServer(api.New(api.Options{Store: st}).Handler())
	t.Cleanup(srv.Close)
	return func(path string) []byte {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Instance-ID", view.Instance.ID)
		req.Header.Set("X-Instance-ID-Signature", agent.SignInstanceID("cd-secret", view.Instance.ID))
		req.Header.Set("X-Tenant-ID", view.Instance.ProjectID)
		req.Header.Set("X-Forwarded-For", "10.90.1.5")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", path, resp.StatusCode, body)
		}
		return body
	}
}

func decodeJSON(t *testing.T, name string, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, b)
	}
	return m
}

func TestConfigDriveBuildMatchesAPI(t *testing.T) {
	ctx := context.Background()
	open, dir := seedDrives(t)
	st, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	view, err := st.InstanceView(ctx, "vm1")
	if err != nil {
		t.Fatal(err)
	}
	get := apiGetter(t, st, view)
	apiMeta := decodeJSON(t, "API meta_data.json", get("/openstack/latest/meta_data.json"))
	if _, ok := apiMeta["admin_pass"]; ok {
		t.Errorf("the API serves admin_pass; it belongs on the drive only")
	}
	delete(apiMeta, "random_seed")

	for _, format := range configDriveFormats {
		t.Run(format, func(t *testing.T) {
			file := filepath.Join(dir, "disk-"+format)
			ios, _, out, _ := testIO()
			opts := &configDriveBuildOptions{IO: ios, Store: open, Ref: "vm1", File: file, Format: format,
				Now: time.Now, ReadFile: os.ReadFile}
			if err := configDriveBuildRun(ctx, opts); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "wrote "+file+": "+format+", label config-2") {
				t.Errorf("build said %q", out)
			}
			img, err := configdrive.Read(file)
			if err != nil {
				t.Fatal(err)
			}
			if img.Format != format || img.Label != configdrive.Label {
				t.Errorf("image is %s labelled %q", img.Format, img.Label)
			}
			onDrive := map[string][]byte{}
			for _, f := range img.Files {
				onDrive[f.Path] = f.Data
			}

			meta := decodeJSON(t, "drive meta_data.json", onDrive["openstack/latest/meta_data.json"])
			if meta["admin_pass"] != "hunter2" {
				t.Errorf("drive admin_pass = %v, want hunter2", meta["admin_pass"])
			}
			if _, ok := meta["random_seed"]; !ok {
				t.Errorf("drive meta_data.json has no random_seed")
			}
			delete(meta, "admin_pass")
			delete(meta, "random_seed")
			if !reflect.DeepEqual(meta, apiMeta) {
				t.Errorf("meta_data.json differs (random_seed and admin_pass aside):\ndrive %v\napi   %v", meta, apiMeta)
			}
			// The other documents are byte for byte what the API serves.
			for _, doc := range []string{"user_data", "network_data.json", "vendor_data.json", "vendor_data2.json"} {
				want := get("/openstack/latest/" + doc)
				if got := onDrive["openstack/latest/"+doc]; !bytes.Equal(got, want) {
					t.Errorf("%s: drive %q, api %q", doc, got, want)
				}
			}
			if got, want := onDrive["ec2/latest/user-data"], get("/latest/user-data"); !bytes.Equal(got, want) {
				t.Errorf("ec2 user-data: drive %q, api %q", got, want)
			}

			checkBlkid(t, file, format)
			checkCloudInit(t, file, view, apiMeta)
		})
	}
}

// checkBlkid asks util-linux what a guest's udev would see.
func checkBlkid(t *testing.T, file, format string) {
	t.Helper()
	if _, err := exec.LookPath("blkid"); err != nil {
		t.Fatalf("blkid is missing (make test installs util-linux): %v", err)
	}
	out, err := exec.Command("blkid", "-p", "-o", "export", file).Output()
	if err != nil {
		t.Fatalf("blkid %s: %v", file, err)
	}
	if !strings.Contains(string(out), "\nLABEL=config-2\n") && !strings.HasPrefix(string(out), "LABEL=config-2\n") {
		t.Errorf("blkid label: %s", out)
	}
	if !strings.Contains(string(out), "TYPE="+format+"\n") {
		t.Errorf("blkid type, want %s: %s", format, out)
	}
}

// checkCloudInit runs cloud-init's own config-drive reader on the image.
func checkCloudInit(t *testing.T, file string, view store.InstanceView, apiMeta map[string]any) {
	t.Helper()
	// make test sets the readers up (tools/cloudinit); a missing one is a
	// broken set-up to report, not a check to pass in silence.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, stderr, err := judge.Run(judge.Command(ctx, testworld.ModuleRoot(t), nil, "", "configdrive", file))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	out, _ := json.Marshal(got)
	sum := sha256.Sum256(view.Instance.UserData)
	if got.InstanceID != view.Instance.ID || got.Hostname != apiMeta["hostname"] || !got.NetworkConfig ||
		got.UserdataSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("cloud-init read %s; want id %s, hostname %v, user data sha256 %x", out, view.Instance.ID, apiMeta["hostname"], sum)
	}
	if got.PublicKeys["default"] != view.Instance.Keys[0].Data {
		t.Errorf("cloud-init keys %v, want default=%s", got.PublicKeys, view.Instance.Keys[0].Data)
	}
}

func TestConfigDriveBuildFollowsFormatSetting(t *testing.T) {
	ctx := context.Background()
	open, dir := seedDrives(t)
	st, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetSetting(ctx, "config_drive_format", "vfat"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	file := filepath.Join(dir, "vm2.img")
	ios, _, out, errOut := testIO()
	if err := configDriveBuildRun(ctx, &configDriveBuildOptions{IO: ios, Store: open, Ref: "vm2", File: file,
		Now: time.Now, ReadFile: os.ReadFile}); err != nil {
		t.Fatal(err)
	}
	r, err := configdrive.Inspect(file)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format != configdrive.FormatVFAT || !r.OK() {
		t.Errorf("built %s with problems %q; said %q", r.Format, r.Problems, out)
	}
	// vm2 never asked for a drive: the build says serve would keep none.
	if !strings.Contains(errOut.String(), "vm2 has config_drive off") {
		t.Errorf("stderr %q", errOut)
	}
}

func TestConfigDriveInspect(t *testing.T) {
	ctx := context.Background()
	open, dir := seedDrives(t)
	good := filepath.Join(dir, "good.iso")
	ios, _, _, _ := testIO()
	if err := configDriveBuildRun(ctx, &configDriveBuildOptions{IO: ios, Store: open, Ref: "vm1", File: good,
		Format: configdrive.FormatISO9660, Now: time.Now, ReadFile: os.ReadFile}); err != nil {
		t.Fatal(err)
	}

	ios, _, out, _ := testIO()
	if err := configDriveInspectRun(ctx, &configDriveInspectOptions{IO: ios, File: good, Output: "table"}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"format:  iso9660\n", "label:   config-2\n", "openstack/latest/", "ok: a guest finds everything"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Sizes are listed: user_data's size is that of vm1's user data.
	if !hasRow(out.String(), "openstack/latest/user_data", "32") {
		t.Errorf("table lacks user_data's size:\n%s", out)
	}

	ios, _, out, _ = testIO()
	if err := configDriveInspectRun(ctx, &configDriveInspectOptions{IO: ios, File: good, Output: "json"}); err != nil {
		t.Fatal(err)
	}
	var r configdrive.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Label != "config-2" || r.Problems == nil || len(r.Entries) == 0 {
		t.Errorf("json report %v: %s", err, out)
	}

	// A drive a guest would not find: wrong label and no network data.
	bad := filepath.Join(dir, "bad.img")
	f, err := os.Create(bad)
	if err != nil {
		t.Fatal(err)
	}
	files := []metadata.File{{Path: "openstack/latest/meta_data.json", Data: []byte(`{"uuid": "x"}`)}}
	if err := configdrive.WriteVFAT(f, files, "CIDATA"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ios, _, out, _ = testIO()
	err = configDriveInspectRun(ctx, &configDriveInspectOptions{IO: ios, File: bad, Output: "yaml"})
	if err == nil || exitCode(err) != exitFail {
		t.Fatalf("inspect of a bad drive: err %v, exit %d", err, exitCode(err))
	}
	if !strings.Contains(out.String(), `label is \"CIDATA\"`) && !strings.Contains(out.String(), `label is "CIDATA"`) {
		t.Errorf("yaml report lacks the label problem:\n%s", out)
	}
	if !strings.Contains(out.String(), "no openstack/latest/network_data.json") {
		t.Errorf("yaml report lacks the missing network data:\n%s", out)
	}
}

// hasRow says some table row starts with first and holds cell as a column.
func hasRow(s, first, cell string) bool {
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == first && slices.Contains(f[1:], cell) {
			return true
		}
	}
	return false
}

func TestConfigDriveCommandLine(t *testing.T) {
	_, dir := seedDrives(t)
	file := filepath.Join(t.TempDir(), "cd.iso")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no file", []string{"configdrive", "build", "vm1"}, exitUsage, "configdrive build needs the FILE to write"},
		{"bad format", []string{"configdrive", "build", "vm1", file, "--format", "ext4"}, exitUsage, "--format ext4: use iso9660 or vfat"},
		{"three arguments", []string{"configdrive", "build", "vm1", "vm2", file}, exitUsage, "one INSTANCE (name or id) and the FILE"},
		{"two files", []string{"configdrive", "build", "vm1", file, "-f", file + ".2"}, exitUsage, "differ; give one"},
		{"bad -o with a file", []string{"configdrive", "build", "vm1", file, "-o", "xml"}, exitUsage, "unknown output format"},
		{"unknown instance", []string{"configdrive", "build", "nope", file}, exitFail, `instance "nope" not found`},
		{"build -f", []string{"configdrive", "build", "vm1", "-f", file}, exitOK, ""},
		{"build -o FILE, deprecated", []string{"configdrive", "build", "vm1", "-o", file}, exitOK, "warning: configdrive build -o FILE is deprecated"},
		{"inspect a missing file", []string{"configdrive", "inspect", filepath.Join(dir, "missing.iso")}, exitFail, "missing.iso"},
		{"inspect bad -o", []string{"configdrive", "inspect", file, "-o", "xml"}, exitUsage, "unknown output format"},
		{"build", []string{"configdrive", "build", "vm1", file}, exitOK, ""},
		{"inspect what was built", []string{"config-drive", "inspect", file, "-o", "json"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, dir, "", tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q), stdout %q", code, tt.wantCode, errOut, tt.wantErr, out)
			}
		})
	}
}

// TestConfigDriveBuildOutputFormats: -o is the output format, as on every
// other command; the file is the argument.
func TestConfigDriveBuildOutputFormats(t *testing.T) {
	_, dir := seedDrives(t)
	file := filepath.Join(t.TempDir(), "cd.iso")
	code, out, stderr := runCLI(t, dir, "", "configdrive", "build", "vm1", file, "-o", "json")
	var b builtDrive
	if code != 0 || json.Unmarshal([]byte(out), &b) != nil || b.File != file || b.Instance != "vm1" || b.Bytes == 0 || b.Format != configdrive.FormatISO9660 {
		t.Fatalf("exit %d, %+v\n%s%s", code, b, out, stderr)
	}
	code, out, _ = runCLI(t, dir, "", "configdrive", "build", "vm1", file, "-o", "yaml")
	if code != 0 || !strings.Contains(out, "instance: vm1\n") || !strings.Contains(out, "file: "+file+"\n") {
		t.Errorf("yaml: %d\n%s", code, out)
	}
}
