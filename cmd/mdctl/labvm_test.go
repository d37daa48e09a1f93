package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/vm"
	"github.com/mdctl/mdctl/server/vmspec"
)

func TestLabVMFlagErrors(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.qcow2")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args    []string
		code    int
		errLine string
	}{
		{[]string{"lab", "up", "vm1"}, 2, "mdctl: INSTANCE arguments need --image"},
		{[]string{"lab", "up", "--kernel", img}, 2, "mdctl: --kernel, --initrd and --append need --image"},
		{[]string{"lab", "up", "--image", img, "--append", "x"}, 2, "mdctl: --initrd and --append need --kernel"},
		{[]string{"lab", "up", "--image", filepath.Join(dir, "nope.qcow2")}, 2, "mdctl: stat " + filepath.Join(dir, "nope.qcow2")},
		{[]string{"lab", "up", "--image", img, "--accel", "fast"}, 2, `mdctl: --accel "fast": use auto, kvm or tcg`},
		{[]string{"lab", "console"}, 2, "mdctl: mdctl lab console takes one INSTANCE"},
		{[]string{"lab", "console", "ghost"}, 1, `mdctl: no lab VM for "ghost"`},
	}
	for _, c := range cases {
		code, _, errOut := runCLI(t, dir, "", c.args...)
		if code != c.code || !strings.HasPrefix(errOut, c.errLine) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q...", c.args, code, errOut, c.code, c.errLine)
		}
	}
}

// A VM lab up recorded whose QEMU is gone: status calls it stopped (exit
// 1), still reads cloud-init's progress off its console, and console
// prints that console.
func TestLabStatusAndConsoleOfARecordedVM(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, dir, "", "apply", "-f", writeTopo(t, dir)); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	const id = "00000000-0000-4000-8000-0000000000aa"
	vmDir := server.LabVMDir(dir, id)
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		t.Fatal(err)
	}
	v := server.LabVM{Instance: "vmx", InstanceID: id, Dir: vmDir, Accel: vm.AccelTCG, AccelReason: "asked for with --accel",
		Started: time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC),
		Ports:   []server.LabVMPort{{PortID: "p1", MAC: "fa:16:3e:00:00:aa", Tap: "tapp1", Bridge: "brqn1", Addrs: []string{"10.90.1.9/24"}, MetadataHop: "10.90.1.1"}}}
	b, _ := json.Marshal(v)
	console := "[    0.000000] Linux version 6.1.0\n" +
		"cloud-init[1]: Cloud-init v. 22.4.2 running 'init-local' at x. Up 5.0 seconds.\n" +
		"cloud-init[2]: Cloud-init v. 22.4.2 running 'init' at x. Up 6.0 seconds.\n" +
		"cloud-init[3]: Cloud-init v. 22.4.2 running 'modules:config' at x. Up 7.0 seconds.\n" +
		"cloud-init[4]: Cloud-init v. 22.4.2 running 'modules:final' at x. Up 8.0 seconds.\n" +
		"cloud-init[4]: Cloud-init v. 22.4.2 finished at x. Datasource DataSourceOpenStackLocal [net,ver=2].  Up 9.0 seconds\n"
	for name, data := range map[string]string{"vm.json": string(b), vm.ConsoleFile: console} {
		if err := os.WriteFile(filepath.Join(vmDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ := runCLI(t, dir, "", "lab", "status", "-o", "json")
	var rows []guestRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got *guestRow
	for i := range rows {
		if rows[i].Kind == kindVM {
			got = &rows[i]
		}
	}
	if code != 1 || got == nil || got.OK || got.VM.State != "stopped" || got.VM.CloudInit.Status != vmspec.StatusDone ||
		len(got.VM.CloudInit.Stages) != 4 || got.VM.Requests != nil || got.Metadata != "router 10.90.1.1" || got.Addresses[0] != "10.90.1.9/24" {
		t.Errorf("exit %d, vm row %+v (vm %+v)", code, got, got.VM)
	}
	code, out, _ = runCLI(t, dir, "", "lab", "console", "vmx")
	if code != 0 || out != console {
		t.Errorf("console: exit %d, %q", code, out)
	}
	code, out, _ = runCLI(t, dir, "", "lab", "status")
	if code != 1 || !strings.Contains(out, "vmx  stopped  tcg") || !strings.Contains(out, "done (DataSourceOpenStackLocal [net,ver=2])") || !strings.Contains(out, "- (no serve)") {
		t.Errorf("status table: exit %d\n%s", code, out)
	}
}

func writeTopo(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "topo.yaml")
	const topo = `
routers: [{name: r1, project: demo}]
networks: [{name: n1, project: demo, cidr: 10.90.1.0/24, router: r1}]
instances: [{name: vm1, project: demo, network: n1}]
`
	if err := os.WriteFile(p, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
