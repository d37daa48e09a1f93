package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

const topo = `settings:
  force_metadata: true
routers:
  - {name: r1, project: demo}
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, router: r1}
  - {name: iso, project: demo, cidr: 10.90.2.0/24}
instances:
  - name: vm1
    project: demo
    network: net1
    ip: 10.90.1.5
    public_keys: {default: "ssh-ed25519 AAAA demo"}
    meta: {role: web}
`

// storeAt returns an opener for a fresh SQLite file, as the factory's.
func storeAt(t *testing.T) (func(context.Context) (store.Store, error), string) {
	t.Helper()
	dir := t.TempDir()
	return func(context.Context) (store.Store, error) { return store.Open(dir, "") }, dir
}

func seed(t *testing.T, open func(context.Context) (store.Store, error)) {
	t.Helper()
	io, in, _, _ := testIO()
	in.WriteString(topo)
	if err := applyRun(context.Background(), &applyOptions{IO: io, Store: open, File: "-", Output: "table"}); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

func TestApplyRun(t *testing.T) {
	open, dir := storeAt(t)
	file := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(file, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	io, _, out, _ := testIO()
	if err := applyRun(context.Background(), &applyOptions{IO: io, Store: open, File: file, Output: "table"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "instance  vm1") || !strings.Contains(out.String(), "0 updated, 0 deleted, 0 unchanged") {
		t.Errorf("first apply:\n%s", out)
	}

	io, _, out, _ = testIO()
	if err := applyRun(context.Background(), &applyOptions{IO: io, Store: open, File: file, Output: "json"}); err != nil {
		t.Fatal(err)
	}
	var res topology.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if res.Changed() || len(res.Changes) == 0 {
		t.Errorf("second apply changed something: %+v", res)
	}
}

func TestApplyRunRefusesBadFile(t *testing.T) {
	open, _ := storeAt(t)
	io, in, _, _ := testIO()
	in.WriteString(strings.Replace(topo, "ip: 10.90.1.5", "ip: 10.90.9.5", 1))
	err := applyRun(context.Background(), &applyOptions{IO: io, Store: open, File: "-", Output: "table"})
	if err == nil || !strings.Contains(err.Error(), "<stdin>:12: instances[0].ip: 10.90.9.5 is outside net1's 10.90.1.0/24") {
		t.Fatalf("err = %v", err)
	}
	if exitCode(err) != exitUsage {
		t.Errorf("exit code = %d", exitCode(err))
	}
}

func TestInstanceCommands(t *testing.T) {
	ctx := context.Background()
	open, dir := storeAt(t)
	seed(t, open)
	ud := filepath.Join(dir, "ud")
	if err := os.WriteFile(ud, []byte("#cloud-config\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	io, _, out, _ := testIO()
	opts := &instanceCreateOptions{IO: io, Store: open, Output: "json", Networks: []string{"net1", "iso"},
		UserDataFile: ud, Keys: []string{"k=ssh-rsa AAA"}, Meta: []string{"a=b"}}
	opts.Spec.Name, opts.Spec.Project, opts.Spec.ConfigDrive = "Web Server", "demo", true
	if err := opts.build(); err != nil {
		t.Fatal(err)
	}
	if err := instanceCreateRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	var v store.InstanceView
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v.Instance.Hostname != "web-server" || len(v.Ports) != 2 || string(v.Instance.UserData) != "#cloud-config\n" ||
		!slices.Equal(v.Instance.Meta, store.Meta{{Key: "a", Value: "b"}}) || !v.Instance.ConfigDrive || v.Ports[1].Port.FixedIPs[0].IPAddress != "10.90.2.3" {
		t.Errorf("created %+v", v)
	}

	io, _, out, _ = testIO()
	if err := instanceKind().listRun(ctx, &recordOptions{IO: io, Store: open, Output: "table"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[2], "net1=10.90.1.3; iso=10.90.2.3") {
		t.Errorf("list:\n%s", out)
	}
	// Columns are aligned: every row has its ID where the header has ID.
	col := strings.Index(lines[0], "ID")
	for _, l := range lines[1:] {
		if len(l) < col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("misaligned row %q", l)
		}
	}

	io, _, out, _ = testIO()
	if err := instanceKind().showRun(ctx, &recordOptions{IO: io, Store: open, Ref: "vm1", Output: "yaml"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "ip_address: 10.90.1.5") {
		t.Errorf("show yaml:\n%s", out)
	}

	io, _, out, _ = testIO()
	if err := instanceKind().deleteRun(ctx, &recordOptions{IO: io, Store: open, Ref: "Web Server"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "deleted instance Web Server (") {
		t.Errorf("delete said %q", out)
	}
	err := instanceKind().showRun(ctx, &recordOptions{IO: io, Store: open, Ref: "Web Server", Output: "table"})
	if err == nil || err.Error() != `instance "Web Server" not found; list them with mdctl instance list` {
		t.Errorf("show deleted: %v", err)
	}
}

func TestInstanceCreateBadFlags(t *testing.T) {
	for _, o := range []*instanceCreateOptions{
		{Keys: []string{"nodata"}},
		{Meta: []string{"=x"}},
	} {
		if err := o.build(); exitCode(err) != exitUsage {
			t.Errorf("%+v: err %v", o, err)
		}
	}
}

func TestNetworkAndRouterCommands(t *testing.T) {
	ctx := context.Background()
	open, _ := storeAt(t)
	io, _, out, _ := testIO()
	if err := routerCreateRun(ctx, &routerCreateOptions{IO: io, Store: open, Spec: topology.RouterSpec{Name: "r1", Project: "demo"}, Output: "table"}); err != nil {
		t.Fatal(err)
	}
	nopts := &networkCreateOptions{IO: io, Store: open, Output: "json", HostRoute: []string{"192.168.0.0/16=10.90.1.254"}}
	nopts.Spec = topology.NetworkSpec{Name: "net1", Project: "demo", Router: "r1"}
	nopts.Subnet.CIDR = "10.90.1.0/24"
	nopts.IPv6CIDR = "fd00:90:1::/64"
	if err := nopts.build(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := networkCreateRun(ctx, nopts); err != nil {
		t.Fatal(err)
	}
	var nv map[string]any
	if err := json.Unmarshal(out.Bytes(), &nv); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if nv["name"] != "net1" || nv["router"] != "r1" || len(nv["subnets"].([]any)) != 2 {
		t.Errorf("network json = %v", nv)
	}

	out.Reset()
	if err := routerKind().showRun(ctx, &recordOptions{IO: io, Store: open, Ref: "r1", Output: "json"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"networks": [
    "net1"
  ]`) {
		t.Errorf("router show:\n%s", out)
	}

	out.Reset()
	if err := networkKind().listRun(ctx, &recordOptions{IO: io, Store: open, Output: "table"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "10.90.1.0/24,fd00:90:1::/64") {
		t.Errorf("network list:\n%s", out)
	}

	// A network with an instance on it is not deleted.
	in := &instanceCreateOptions{IO: io, Store: open, Output: "table", Networks: []string{"net1"}}
	in.Spec.Name, in.Spec.Project = "vm1", "demo"
	_ = in.build()
	if err := instanceCreateRun(ctx, in); err != nil {
		t.Fatal(err)
	}
	err := networkKind().deleteRun(ctx, &recordOptions{IO: io, Store: open, Ref: "net1"})
	if !errors.Is(err, store.ErrConflict) || exitCode(err) != exitFail {
		t.Errorf("delete in-use network: %v", err)
	}
	out.Reset()
	if err := routerKind().deleteRun(ctx, &recordOptions{IO: io, Store: open, Ref: "r1"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "deleted router r1") {
		t.Errorf("router delete: %q", out)
	}
}

func TestConfigCommands(t *testing.T) {
	ctx := context.Background()
	open, _ := storeAt(t)
	io, _, out, _ := testIO()
	if err := configSetRun(ctx, &configOptions{IO: io, Store: open, Key: "metadata_proxy_shared_secret", Value: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "metadata_proxy_shared_secret = ********\n" {
		t.Errorf("set: %q", out)
	}

	out.Reset()
	if err := configListRun(ctx, &configOptions{IO: io, Store: open, Output: "json"}); err != nil {
		t.Fatal(err)
	}
	var views []settingView
	if err := json.Unmarshal(out.Bytes(), &views); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range views {
		if v.Key == "metadata_proxy_shared_secret" {
			found = true
			if v.Value != masked || v.Source != "store" || !v.Secret {
				t.Errorf("secret listed as %+v", v)
			}
		}
		if v.Key == "force_metadata" && (v.Source != "default" || v.Value != "false") {
			t.Errorf("default listed as %+v", v)
		}
	}
	if !found || len(views) != len(store.SettingDefs()) {
		t.Errorf("list has %d settings", len(views))
	}

	out.Reset()
	if err := configGetRun(ctx, &configOptions{IO: io, Store: open, Key: "metadata_proxy_shared_secret", ShowSecrets: true, Output: "table"}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "s3cret\n" {
		t.Errorf("get --show-secrets: %q", out)
	}

	if err := configUnsetRun(ctx, &configOptions{IO: io, Store: open, Key: "metadata_proxy_shared_secret"}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := configListRun(ctx, &configOptions{IO: io, Store: open, Output: "table"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "KEY") || strings.Contains(out.String(), "store ") {
		t.Errorf("after unset:\n%s", out)
	}
}

// runCLI runs the whole command tree as main would.
func runCLI(t *testing.T, dataDir string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	io, in, out, errOut := testIO()
	in.WriteString(stdin)
	env := func(k string) string {
		if k == "MDCTL_DATA_DIR" {
			return dataDir
		}
		return ""
	}
	code := run(context.Background(), args, io, env)
	return code, out.String(), errOut.String()
}

func TestExitCodesAndErrors(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, "") // an empty store: "not found", not "no store"
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	cases := []struct {
		args    []string
		code    int
		errLine string
	}{
		{[]string{"config", "set", "config_drive_format", "ext4"}, 2, `mdctl: config_drive_format: "ext4" is not allowed; allowed: iso9660, vfat`},
		{[]string{"config", "get", "nope"}, 2, `mdctl: unknown setting "nope"; known settings:`},
		{[]string{"instance", "show", "ghost"}, 1, `mdctl: instance "ghost" not found; list them with mdctl instance list`},
		{[]string{"instance", "list", "-o", "xml"}, 2, "mdctl: -o xml: unknown output format; use one of table, json, yaml"},
		{[]string{"network", "create", "n1", "--project", "p"}, 2, `mdctl: required flag(s) "cidr" not set`},
		{[]string{"router", "create"}, 2, "mdctl: mdctl router create takes one router NAME (got 0 arguments)"},
		{[]string{"apply"}, 2, "mdctl: apply needs a file"},
		{[]string{"apply", "-f", "/nonexistent.yaml"}, 1, "mdctl: read topology: open /nonexistent.yaml"},
		{[]string{"serve", "--components", "api,dns"}, 2, `mdctl: --components: unknown component "dns"`},
		{[]string{"serve", "--set", "force_metadata=perhaps"}, 2, `mdctl: --set: force_metadata: "perhaps" is not a boolean`},
		{[]string{"frobnicate"}, 2, `mdctl: unknown command "frobnicate"`},
		{[]string{"instanc"}, 2, `mdctl: unknown command "instanc" for "mdctl"; did you mean instance? (see mdctl --help)`},
		{[]string{"instance", "lst"}, 2, `mdctl: unknown command "lst" for "mdctl instance"; did you mean list? (see mdctl instance --help)`},
		{[]string{"lab", "bogus"}, 2, `mdctl: unknown command "bogus" for "mdctl lab" (see mdctl lab --help)`},
		{[]string{"version", "--bogus"}, 2, "mdctl: unknown flag: --bogus"},
		{[]string{"completion", "tcsh"}, 2, `mdctl: completion: unknown shell "tcsh"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, dir, "", tc.args...)
			if code != tc.code || !strings.HasPrefix(stderr, tc.errLine) {
				t.Errorf("exit %d, stderr %q; want exit %d, %q", code, stderr, tc.code, tc.errLine)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("error is not one line: %q", stderr)
			}
		})
	}
}

func TestEndToEndThroughRun(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, dir, topo, "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %d %s", code, stderr)
	}
	code, out, _ := runCLI(t, dir, "", "instance", "list", "-o", "json")
	var views []store.InstanceView
	if code != 0 || json.Unmarshal([]byte(out), &views) != nil || len(views) != 1 || views[0].Instance.Name != "vm1" {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, out, _ := runCLI(t, dir, "", "config", "get", "force_metadata"); code != 0 || out != "true\n" {
		t.Errorf("config get: %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "mdctl.db")); err != nil {
		t.Errorf("MDCTL_DATA_DIR not used: %v", err)
	}
}

func TestEveryCommandHasExamples(t *testing.T) {
	io, _, _, _ := testIO()
	root := newRootCmd(&factory{IO: io, Getenv: func(string) string { return "" }})
	for _, c := range allCommands(root) {
		if c.Example == "" {
			t.Errorf("%s has no examples in --help", c.CommandPath())
		}
	}
}

func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		if !sub.Hidden && sub.Name() != "help" {
			out = append(out, allCommands(sub)...)
		}
	}
	return out
}

func TestCompletionsUpToDate(t *testing.T) {
	io, _, _, _ := testIO()
	root := newRootCmd(&factory{IO: io, Getenv: func(string) string { return "" }})
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		var b bytes.Buffer
		if err := writeCompletion(root, shell, &b); err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join("..", "..", "completions", "mdctl."+shell))
		if err != nil {
			t.Fatalf("%v (run make completions)", err)
		}
		if !bytes.Equal(committed, b.Bytes()) {
			t.Errorf("completions/mdctl.%s is out of date: run make completions (go generate ./completions)", shell)
		}
	}
}

func TestServeAPIStopsOnCancel(t *testing.T) {
	open, dir := storeAt(t)
	seed(t, open)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // serve listens itself; the port was free a moment ago
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	io, _, _, errOut := testIO()
	done := make(chan error, 1)
	go func() {
		done <- serveRun(ctx, &serveOptions{IO: io, Store: open, DataDir: dir, Components: []string{"api"}, APIListen: addr})
	}()
	// Wait (bounded) for the API to answer the version list.
	var resp *http.Response
	for i := 0; i < 100; i++ {
		resp, err = http.Get("http://" + addr + "/")
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, errOut)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("api never answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET / = %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
	if !strings.Contains(errOut.String(), "mdctl serve stopped") {
		t.Errorf("logs:\n%s", errOut)
	}
}

// TestReadOnlyCommandsCreateNoStore: on a data dir without a store, commands
// that read (or change one record) say so and exit 1, and leave no store
// behind; apply creates one, private to its owner.
func TestReadOnlyCommandsCreateNoStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"instance", "list"}, {"network", "list"}, {"router", "show", "r1"}, {"instance", "delete", "vm1"},
		{"config", "list"}, {"config", "get", "force_metadata"}, {"config", "set", "force_metadata", "true"},
		{"trace", "vm1"}, {"lab", "status"}, {"configdrive", "build", "vm1", filepath.Join(t.TempDir(), "cd.iso")},
	} {
		code, _, stderr := runCLI(t, dir, "", args...)
		want := "mdctl: no store at " + filepath.Join(dir, "mdctl.db") + ": seed one with mdctl apply -f FILE"
		if code != 1 || !strings.HasPrefix(stderr, want) {
			t.Errorf("%v: exit %d, %q; want exit 1, %q", args, code, stderr, want)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v created %s (%v)", args, dir, err)
		}
	}
	if code, _, stderr := runCLI(t, dir, topo, "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %s", stderr)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "mdctl.db"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if code, out, stderr := runCLI(t, dir, "", "instance", "list"); code != 0 || !strings.Contains(out, "vm1") {
		t.Errorf("list after apply: %d %s %s", code, out, stderr)
	}
}

// TestStoreTightenedOnOpen: a database an older mdctl left world-readable
// is made private the next time it is opened.
func TestStoreTightenedOnOpen(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "mdctl.db")
	if code, _, stderr := runCLI(t, dir, topo, "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %s", stderr)
	}
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, dir, "", "instance", "list"); code != 0 {
		t.Fatalf("list: %s", stderr)
	}
	if fi, err := os.Stat(db); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

// TestApplyMasksSecrets: apply's table and JSON never print the shared
// secret, neither created nor changed.
func TestApplyMasksSecrets(t *testing.T) {
	dir := t.TempDir()
	for i, secret := range []string{"first-s3cret", "second-s3cret"} {
		for _, format := range []string{"table", "json", "yaml"} {
			file := "settings:\n  metadata_proxy_shared_secret: " + secret + "\n"
			code, out, stderr := runCLI(t, dir, file, "apply", "-f", "-", "-o", format)
			if code != 0 || strings.Contains(out, "s3cret") || !strings.Contains(out, masked) {
				t.Errorf("apply %d -o %s: exit %d, output:\n%s%s", i, format, code, out, stderr)
			}
		}
	}
}

// TestGroupAloneShowsHelp: a command group without a subcommand still
// prints its help and succeeds.
func TestGroupAloneShowsHelp(t *testing.T) {
	for _, group := range []string{"instance", "config", "lab"} {
		code, out, stderr := runCLI(t, t.TempDir(), "", group)
		if code != 0 || !strings.Contains(out, "Available Commands:") || stderr != "" {
			t.Errorf("mdctl %s: exit %d, stdout %.60q, stderr %q", group, code, out, stderr)
		}
	}
}

// TestPrintErrorKeepsBlankLinesBlank: "mdctl: " starts every line of an
// error that says something, never an empty one.
func TestPrintErrorKeepsBlankLinesBlank(t *testing.T) {
	var b bytes.Buffer
	printError(&b, errors.New("first\n\n  \nsecond\n"))
	if want := "mdctl: first\n\n\nmdctl: second\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// TestApplyEmptyInputIsAnError: nothing to apply is a mistake (a wrong
// file, an empty pipe), not a silent success.
func TestApplyEmptyInputIsAnError(t *testing.T) {
	for _, in := range []string{"", "\n  \n", "# only a comment\n", "{}\n"} {
		for _, cmd := range []string{"apply", "diff"} {
			code, _, stderr := runCLI(t, t.TempDir(), in, cmd, "-f", "-")
			if code != 2 || !strings.HasPrefix(stderr, "mdctl: <stdin>: the topology is empty") {
				t.Errorf("%s of %q: exit %d, %q", cmd, in, code, stderr)
			}
		}
	}
}

// TestApplyDryRunAndDiff: both check the file against the store and say
// what would change without writing; diff exits 1 when something would.
func TestApplyDryRunAndDiff(t *testing.T) {
	dir := t.TempDir()
	// No store yet: everything would be created, and no store is made.
	code, out, stderr := runCLI(t, dir, topo, "apply", "--dry-run", "-f", "-")
	if code != 0 || !strings.Contains(out, "instance  vm1") || !strings.Contains(out, "created") {
		t.Errorf("dry run on no store: %d\n%s%s", code, out, stderr)
	}
	if code, _, _ := runCLI(t, dir, topo, "diff", "-f", "-"); code != 1 {
		t.Errorf("diff against no store: exit %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "mdctl.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry run or diff created the store (%v)", err)
	}
	if code, _, stderr := runCLI(t, dir, topo, "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %s", stderr)
	}
	if code, out, stderr := runCLI(t, dir, topo, "diff", "-f", "-"); code != 0 || strings.TrimSpace(out) != "KIND  NAME  ACTION  ID  DETAIL\n0 created, 0 updated, 0 deleted, 0 unchanged" {
		t.Errorf("diff in sync: exit %d\n%q%s", code, out, stderr)
	}
	changed := strings.Replace(topo, "force_metadata: true", "force_metadata: false", 1) + "  - {name: vm9, project: demo, network: net1}\n"
	code, out, stderr = runCLI(t, dir, changed, "diff", "-f", "-", "-o", "json")
	var res topology.Result
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil || len(res.Changes) < 2 {
		t.Fatalf("diff of a changed file: exit %d\n%s%s", code, out, stderr)
	}
	for _, c := range res.Changes {
		if c.Action == topology.Unchanged || (c.Action == topology.Created && c.ID != "") {
			t.Errorf("diff lists %+v", c)
		}
	}
	if stderr != "mdctl: apply would change "+fmt.Sprint(len(res.Changes))+" records\n" {
		t.Errorf("diff stderr %q", stderr)
	}
	if code, _, stderr := runCLI(t, dir, changed, "apply", "--dry-run", "-f", "-"); code != 0 {
		t.Fatalf("dry run: %s", stderr)
	}
	if code, out, _ := runCLI(t, dir, "", "config", "get", "force_metadata"); code != 0 || out != "true\n" {
		t.Errorf("dry run wrote a setting: %q", out)
	}
	if code, _, stderr := runCLI(t, dir, "", "instance", "show", "vm9"); code != 1 {
		t.Errorf("dry run created vm9: %d %s", code, stderr)
	}
}

// TestConfigSetTakesNegativeValues: "-1" reaches the setting's own check
// instead of failing as an unknown shorthand flag.
func TestConfigSetTakesNegativeValues(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, dir, topo, "apply", "-f", "-"); code != 0 {
		t.Fatal(stderr)
	}
	code, _, stderr := runCLI(t, dir, "", "config", "set", "metadata_cache_expiration", "-1")
	if want := "mdctl: metadata_cache_expiration: \"-1\" is not an integer ≥ 0\n"; code != 2 || stderr != want {
		t.Errorf("exit %d, %q; want 2, %q", code, stderr, want)
	}
	if code, out, stderr := runCLI(t, dir, "", "config", "set", "force_metadata", "off"); code != 0 || out != "force_metadata = false\n" {
		t.Errorf("config set off: %d %q %s", code, out, stderr)
	}
}

// TestOutputFormatsAgree: -o yaml is -o json's document (user_data as
// base64, not a list of numbers), version has -o, and an empty list says
// so on stderr, leaving stdout empty for a pipe.
func TestOutputFormatsAgree(t *testing.T) {
	dir := t.TempDir()
	withUserData := topo + "    user_data: \"#cloud-config\\n\"\n"
	if code, _, stderr := runCLI(t, dir, withUserData, "apply", "-f", "-"); code != 0 {
		t.Fatal(stderr)
	}
	_, asJSON, _ := runCLI(t, dir, "", "instance", "show", "vm1", "-o", "json")
	code, asYAML, stderr := runCLI(t, dir, "", "instance", "show", "vm1", "-o", "yaml")
	if code != 0 || !strings.Contains(asYAML, "  user_data: I2Nsb3VkLWNvbmZpZwo=\n") {
		t.Errorf("yaml user_data:\n%s%s", asYAML, stderr)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal([]byte(asJSON), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(asYAML), &fromYAML); err != nil {
		t.Fatal(err)
	}
	// Through JSON once more, so that YAML's ints compare with JSON's numbers.
	b, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	fromYAML = nil
	if err := json.Unmarshal(b, &fromYAML); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Errorf("-o yaml and -o json differ:\n%v\n%v", fromJSON, fromYAML)
	}

	code, out, _ := runCLI(t, dir, "", "version", "-o", "json")
	var v versionInfo
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" || v.Go == "" {
		t.Errorf("version -o json: %d %q", code, out)
	}
	if code, _, stderr := runCLI(t, dir, "", "version", "-o", "xml"); code != 2 || !strings.Contains(stderr, "unknown output format") {
		t.Errorf("version -o xml: %d %q", code, stderr)
	}

	empty := t.TempDir()
	runCLI(t, empty, "settings: {force_metadata: false}\n", "apply", "-f", "-")
	for _, kind := range []string{"instance", "network", "router"} {
		code, out, stderr := runCLI(t, empty, "", kind, "list")
		if code != 0 || out != "" || stderr != "No resources found\n" {
			t.Errorf("%s list on an empty store: exit %d, stdout %q, stderr %q", kind, code, out, stderr)
		}
		if code, out, _ := runCLI(t, empty, "", kind, "list", "-o", "json"); code != 0 || out != "[]\n" {
			t.Errorf("%s list -o json on an empty store: %d %q", kind, code, out)
		}
	}
}

// TestShellCompletion: the committed scripts ask `mdctl __complete`; it
// offers the store's names, setting values, components and route modes.
func TestShellCompletion(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, dir, topo, "apply", "-f", "-"); code != 0 {
		t.Fatal(stderr)
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"instance", "show", ""}, []string{"vm1"}},
		{[]string{"instance", "delete", ""}, []string{"vm1"}},
		{[]string{"trace", ""}, []string{"vm1"}},
		{[]string{"lab", "exec", ""}, []string{"vm1"}},
		{[]string{"configdrive", "build", ""}, []string{"vm1"}},
		{[]string{"network", "show", ""}, []string{"net1", "iso"}},
		{[]string{"router", "delete", ""}, []string{"r1"}},
		{[]string{"instance", "create", "vm2", "--network", ""}, []string{"net1", "iso"}},
		{[]string{"network", "create", "n2", "--router", ""}, []string{"r1"}},
		{[]string{"config", "set", "force_metadata", ""}, []string{"true", "false"}},
		{[]string{"config", "set", "config_drive_format", ""}, []string{"iso9660", "vfat"}},
		{[]string{"serve", "--components", "api,"}, []string{"api,agent", "api,proxy", "api,configdrive"}},
		{[]string{"lab", "up", "--routes", ""}, []string{"dhcp", "static"}},
	}
	for _, tt := range tests {
		code, out, stderr := runCLI(t, dir, "", append([]string{"__complete"}, tt.args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) == 0 || !slices.Equal(lines[:len(lines)-1], tt.want) {
			t.Errorf("complete %q: exit %d, %q (%s); want %q", tt.args, code, lines, stderr, tt.want)
		}
	}
	empty := filepath.Join(t.TempDir(), "none")
	if _, out, _ := runCLI(t, empty, "", "__complete", "instance", "show", ""); strings.TrimSpace(out) != ":4" {
		t.Errorf("completion without a store: %q", out)
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("completion created a store (%v)", err)
	}
}
