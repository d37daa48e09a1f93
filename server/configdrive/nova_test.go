package configdrive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/judge"
	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/store"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// seedReader is a deterministic random_seed source.
type seedReader struct{ r *rand.ChaCha8 }

func (s seedReader) Read(p []byte) (int, error) { return s.r.Read(p) }

// testView is an instance as the store would hand it over: keys, binary
// user data over 64 KiB, admin password, an injected file, one port.
func testView() (store.InstanceView, []byte) {
	ud := make([]byte, 65*1024+3)
	for i := range ud {
		ud[i] = byte(i*7 + i/256)
	}
	created := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	v := store.InstanceView{
		Instance: store.Instance{
			ID: "8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21", Name: "vm1", Hostname: "vm1",
			ProjectID: "6f8e3a2b1c9d4e5f8a7b6c5d4e3f2a1b", AvailabilityZone: "nova", Flavor: "m1.small",
			Meta:     store.Meta{{Key: "role", Value: "web"}},
			Keys:     []store.Key{{Name: "mykey", Type: "ssh", Data: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGp test@mdctl"}},
			UserData: ud, ConfigDrive: true, AdminPass: "s3cret", EC2ID: 1, CreatedAt: created, UpdatedAt: created,
		},
		Project: store.Project{ID: "6f8e3a2b1c9d4e5f8a7b6c5d4e3f2a1b", Name: "demo"},
		Ports: []store.PortView{{
			Port: store.Port{ID: "3f1c0f5e-9d7b-4c1a-8e2f-5a6b7c8d9e0f", NetworkID: "net1", ProjectID: "6f8e3a2b1c9d4e5f8a7b6c5d4e3f2a1b",
				MACAddress: "fa:16:3e:00:00:01", FixedIPs: []store.FixedIP{{SubnetID: "sub1", IPAddress: "10.90.1.5"}},
				DeviceID: "8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21", DeviceOwner: store.OwnerCompute, CreatedAt: created},
			Network: store.Network{ID: "net1", Name: "private", ProjectID: "6f8e3a2b1c9d4e5f8a7b6c5d4e3f2a1b", MTU: 1450},
			Subnets: []store.Subnet{{ID: "sub1", NetworkID: "net1", IPVersion: 4, CIDR: "10.90.1.0/24", GatewayIP: "10.90.1.1",
				EnableDHCP: true, DNSNameservers: []string{"10.90.1.2"}}},
		}},
	}
	return v, ud
}

// novaFiles builds the drive's files the only allowed way: through
// server/metadata. nil while that package's builder is still a stub.
func novaFiles(t *testing.T) []metadata.File {
	t.Helper()
	v, _ := testView()
	md, err := metadata.Build(v, metadata.Options{
		Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), DHCPDomain: "novalocal", ForConfigDrive: true,
		Providers: []string{metadata.StaticJSON}, StaticVendor: json.RawMessage(`{"motd": "hello"}`),
		Rand:  seedReader{rand.NewChaCha8([32]byte{1})},
		Files: []metadata.File{{Path: "/etc/motd", Data: []byte("welcome\n")}},
	})
	if err != nil {
		t.Fatalf("metadata.Build: %v", err)
	}
	files := md.ConfigDriveFiles()
	if len(files) == 0 {
		t.Skip("metadata.ConfigDriveFiles returns no files yet (stub): skipping until server/metadata lands")
	}
	return files
}

func TestNovaLayoutGolden(t *testing.T) {
	files := novaFiles(t)
	var b strings.Builder
	for _, f := range sortedFiles(files) {
		b.WriteString(f.Path + "\n")
	}
	golden := filepath.Join("testdata", "layout.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if b.String() != string(want) {
		t.Errorf("layout differs from %s (go test -update rewrites it):\ngot:\n%swant:\n%s", golden, b.String(), want)
	}
	// And the drive written from it reads back as that same layout.
	img, err := roundTrip(FormatISO9660, files)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameFiles(files, img.Files); err != nil {
		t.Error(err)
	}
}

// judges are cloud-init's readers in the repository (tools/cloudinit), by
// version: every drive must satisfy each.
func judges(t *testing.T) (root string, versions []string) {
	t.Helper()
	root, err := judge.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	versions, err = judge.Versions(root)
	if err != nil {
		t.Fatal(err)
	}
	return root, versions
}

// TestCloudInitReadsDrive: each judge's ConfigDrive datasource claims the
// drive in both formats, reads it whole, and converts, validates and
// renders its network_data.json.
func TestCloudInitReadsDrive(t *testing.T) {
	files := novaFiles(t)
	needTools(t, "blkid", "osirrox", "mcopy")
	root, versions := judges(t)
	v, ud := testView()
	sum := sha256.Sum256(ud)
	for _, version := range versions {
		for _, format := range []string{FormatISO9660, FormatVFAT} {
			t.Run(version+"/"+format, func(t *testing.T) {
				img := filepath.Join(t.TempDir(), "disk.config")
				if err := WriteFile(img, format, files); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				got, stderr, err := judge.Run(judge.Command(ctx, root, nil, version, "configdrive", img))
				if err != nil {
					t.Fatalf("%v\n%s", err, stderr)
				}
				if got.InstanceID != v.Instance.ID || got.Label != Label || got.FSType != format || !got.NetworkConfig {
					t.Errorf("cloud-init saw %+v", got)
				}
				if got.Network == nil || !strings.Contains(got.Network.Netplan, "fa:16:3e:") || !strings.Contains(got.Network.ENI, "eth0") {
					t.Errorf("cloud-init's rendering of network_data.json: %+v", got.Network)
				}
				if got.UserdataLen != len(ud) || got.UserdataSHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("user data: cloud-init read %d bytes sha256 %s, want %d bytes %x", got.UserdataLen, got.UserdataSHA256, len(ud), sum)
				}
				checkInspect(t, files, format, img)
			})
		}
	}
}

// checkInspect: Inspect finds no problem on the drive, and its extracted
// tree is files.
func checkInspect(t *testing.T, files []metadata.File, format, img string) {
	t.Helper()
	r, err := Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Errorf("Inspect found problems on a drive built by metadata: %q", r.Problems)
	}
	if err := sameFiles(files, readTree(t, extract(t, format, img))); err != nil {
		t.Errorf("extracted tree: %v", err)
	}
}
