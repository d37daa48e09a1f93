package vmspec

import (
	"encoding/xml"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/internal/golden"
	"github.com/mdctl/mdctl/server/configdrive"
	"github.com/mdctl/mdctl/store"
)

const uuid = "3f2a8f4e-5b1c-4d2e-9f00-1a2b3c4d5e6f"

func spec(format string) Spec {
	s := Spec{InstanceID: uuid, Name: "vm1", NICs: []NIC{
		{PortID: "p1", MAC: "fa:16:3e:12:34:56", Tap: "tap0a1b2c3d-4e", Bridge: "br0", MTU: 1450},
		{PortID: "p2", MAC: "fa:16:3e:ab:cd:ef", Tap: "tap9f8e7d6c-5b", Bridge: "brq1234567890a"},
	}}
	if format != "" {
		s.ConfigDrive = &Disk{Path: "/var/lib/mdctl/config-drives/" + uuid + ".iso", Format: format}
		if format == configdrive.FormatVFAT {
			s.ConfigDrive.Path = strings.TrimSuffix(s.ConfigDrive.Path, ".iso") + ".img"
		}
	}
	return s
}

// TestNovaSysInfo pins nova's SMBIOS system record: what ds-identify and
// cloud-init's OpenStack datasource read from /sys/class/dmi/id.
func TestNovaSysInfo(t *testing.T) {
	s := NovaSysInfo(uuid, "")
	want := SysInfo{Manufacturer: "OpenStack Foundation", Product: "OpenStack Nova", Serial: uuid, UUID: uuid, Family: "Virtual Machine"}
	if s != want {
		t.Errorf("NovaSysInfo = %+v, want %+v", s, want)
	}
	args := s.QEMUArgs()
	wantArgs := []string{"-uuid", uuid, "-smbios", "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,serial=" + uuid + ",uuid=" + uuid + ",family=Virtual Machine"}
	if !slices.Equal(args, wantArgs) {
		t.Errorf("QEMUArgs = %q, want %q", args, wantArgs)
	}
	if got := NovaSysInfo(uuid, "27.1.0").QEMUArgs()[3]; !strings.Contains(got, "product=OpenStack Nova,version=27.1.0,serial=") {
		t.Errorf("version: %s", got)
	}
	// A comma in a value is doubled, QEMU's escape.
	if got := (SysInfo{UUID: "u", Family: "a,b"}).QEMUArgs()[3]; !strings.Contains(got, "family=a,,b") {
		t.Errorf("comma not escaped: %s", got)
	}
}

// TestFromView: a NIC per port, tap and bridge as the data plane names
// them (the operator's bridge for an attached network).
func TestFromView(t *testing.T) {
	v := store.InstanceView{Instance: store.Instance{ID: uuid, Name: "vm1"}, Ports: []store.PortView{
		{Port: store.Port{ID: "0a1b2c3d-4e5f-0000-0000-000000000001", MACAddress: "fa:16:3e:12:34:56"}, Network: store.Network{ID: "n1", Bridge: "br0", MTU: 1450}},
		{Port: store.Port{ID: "9f8e7d6c-5b4a-0000-0000-000000000002", MACAddress: "fa:16:3e:ab:cd:ef"}, Network: store.Network{ID: "1234567890abcdef"}},
	}}
	got := FromView(v, "", nil)
	want := spec("")
	for i := range want.NICs {
		want.NICs[i].PortID = v.Ports[i].Port.ID
	}
	want.NICs[1].MTU = 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromView = %+v\nwant %+v", got, want)
	}
}

// TestGolden pins the libvirt fragment and the QEMU arguments for no
// config drive, an iso9660 one and a vfat one; the XML must parse.
func TestGolden(t *testing.T) {
	for _, format := range []string{"", configdrive.FormatISO9660, configdrive.FormatVFAT} {
		name := format
		if name == "" {
			name = "nodrive"
		}
		t.Run(name, func(t *testing.T) {
			s := spec(format)
			x := s.LibvirtXML()
			var dom struct {
				XMLName xml.Name `xml:"domain"`
				Entries []struct {
					Name  string `xml:"name,attr"`
					Value string `xml:",chardata"`
				} `xml:"sysinfo>system>entry"`
				SMBIOS struct {
					Mode string `xml:"mode,attr"`
				} `xml:"os>smbios"`
			}
			if err := xml.Unmarshal([]byte(x), &dom); err != nil {
				t.Fatalf("libvirt fragment does not parse: %v\n%s", err, x)
			}
			if len(dom.Entries) != 5 || dom.Entries[0].Value != Manufacturer || dom.SMBIOS.Mode != "sysinfo" {
				t.Errorf("parsed sysinfo %+v smbios %+v", dom.Entries, dom.SMBIOS)
			}
			golden.Check(t, name+".xml", x)
			golden.Check(t, name+".qemu", strings.Join(s.QEMUArgs(), "\n")+"\n")
		})
	}
}
