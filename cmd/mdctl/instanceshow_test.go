package main

import (
	"context"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/internal/golden"
	"github.com/mdctl/mdctl/server/dataplane"
)

const attachTopo = `routers:
  - {name: r1, project: demo}
networks:
  - {name: lan, project: demo, cidr: 192.168.50.0/24, router: r1, bridge: br0, mtu: 1450}
  - {name: iso, project: demo, cidr: 10.90.2.0/24}
instances:
  - name: vm1
    project: demo
    host: hv1
    config_drive: true
    ports:
      - {network: lan, ip: 192.168.50.10, mac: "fa:16:3e:12:34:56"}
      - {network: iso, ip: 10.90.2.10, mac: "fa:16:3e:ab:cd:ef"}
`

// TestInstanceShowAttach pins instance show --libvirt and --qemu: nova's
// SMBIOS record, a NIC per port on its bridge, the config drive, and the
// notes. The instance's and ports' random ids are replaced by names.
func TestInstanceShowAttach(t *testing.T) {
	open, dir := storeAt(t)
	io, in, _, _ := testIO()
	in.WriteString(attachTopo)
	if err := applyRun(context.Background(), &applyOptions{IO: io, Store: open, File: "-", Output: "table"}); err != nil {
		t.Fatal(err)
	}
	st, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.InstanceView(context.Background(), "vm1")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	stable := func(s string) string {
		dp, err := dataplane.ForDataDir(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		r := []string{v.Instance.ID, "INSTANCE-UUID", dir, "DATADIR", dp.SegmentNamespace, "SEGMENT",
			"version=" + version() + ",", "version=VERSION,",
			"<entry name='version'>" + version() + "<", "<entry name='version'>VERSION<"}
		for i, p := range v.Ports {
			r = append(r, p.Port.ID, "PORT"+string(rune('0'+i)), dataplane.TapName(p.Port.ID), "tapPORT"+string(rune('0'+i)))
			r = append(r, dataplane.BridgeName(p.Network.ID), "brqNET"+string(rune('0'+i)))
		}
		return strings.NewReplacer(r...).Replace(s)
	}
	for _, flagName := range []string{"--libvirt", "--qemu"} {
		t.Run(flagName, func(t *testing.T) {
			code, out, errOut := runCLI(t, dir, "", "instance", "show", "vm1", flagName)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range []string{"OpenStack Foundation", "OpenStack Nova", "Virtual Machine", "serial=" + v.Instance.ID, "fa:16:3e:12:34:56", "br0"} {
				if flagName == "--libvirt" {
					want = strings.Replace(want, "serial=", "<entry name='serial'>", 1)
				}
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			golden.Check(t, "instance-show"+strings.ReplaceAll(flagName, "-", "_")+".golden", stable(out))
		})
	}
	if code, _, errOut := runCLI(t, dir, "", "instance", "show", "vm1", "--libvirt", "--qemu"); code != 2 {
		t.Errorf("--libvirt --qemu: exit %d (%s), want a usage error", code, errOut)
	}
	if code, _, errOut := runCLI(t, dir, "", "instance", "show", "vm1", "--qemu", "-o", "json"); code != 2 {
		t.Errorf("--qemu -o json: exit %d (%s), want a usage error", code, errOut)
	}
}
