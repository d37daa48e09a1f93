package judge

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testID = "6f1c0b2e-58a4-4d0e-9c3b-7a2e41d9b805"

// drive writes a config-2 tree (as a directory) with network as its
// network_data.json.
func drive(t *testing.T, network map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	latest := filepath.Join(dir, "openstack", "latest")
	if err := os.MkdirAll(latest, 0o755); err != nil {
		t.Fatal(err)
	}
	md, _ := json.Marshal(map[string]any{"uuid": testID, "name": "vm1", "hostname": "vm1.novalocal"})
	nd, _ := json.Marshal(network)
	for name, b := range map[string][]byte{"meta_data.json": md, "network_data.json": nd} {
		if err := os.WriteFile(filepath.Join(latest, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func network(mtu any) map[string]any {
	return map[string]any{
		"links":    []any{map[string]any{"id": "tap1", "type": "ovs", "ethernet_mac_address": "fa:16:3e:00:00:01", "mtu": mtu}},
		"networks": []any{map[string]any{"id": "n1", "link": "tap1", "type": "ipv4", "ip_address": "10.90.0.5", "netmask": "255.255.255.0"}},
		"services": []any{},
	}
}

// TestJudgesJudge: each judge accepts a good drive and renders its
// network; it rejects a link whose MAC no NIC of this machine has (as a
// guest's cloud-init does), and, where its version has a network schema,
// a config the schema forbids (an MTU that is not a number).
func TestJudgesJudge(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	versions, err := Versions(root)
	if err != nil {
		t.Fatal(err)
	}
	good, badMTU := drive(t, network(1450)), drive(t, network("big"))
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			crawl := func(args ...string) (Crawl, error) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				c, stderr, err := Run(Command(ctx, root, nil, v, "configdrive", args...))
				if errors.Is(err, ErrNotSetUp) {
					t.Fatal(err)
				}
				if err != nil && stderr != "" {
					t.Logf("stderr: %s", stderr)
				}
				return c, err
			}
			c, err := crawl(good)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(c.Judge, v) || c.InstanceID != testID || c.Network == nil ||
				!strings.Contains(c.Network.ENI, "address 10.90.0.5/24") || !strings.Contains(c.Network.Netplan, "10.90.0.5/24") {
				t.Errorf("good drive read as %+v (network %+v)", c, c.Network)
			}
			if _, err := crawl("--nics", "system", good); err == nil || !strings.Contains(err.Error(), "fa:16:3e:00:00:01") {
				t.Errorf("a link with no NIC on this machine: %v, want a rejection naming its MAC", err)
			}
			_, err = crawl(badMTU)
			if c.Network.Schema == "strict" && (err == nil || !strings.Contains(err.Error(), "SchemaValidationError")) {
				t.Errorf("MTU \"big\" under cloud-init %s's strict schema: %v, want a SchemaValidationError", c.Judge, err)
			}
			if c.Network.Schema == "none" && err != nil {
				t.Errorf("cloud-init %s has no network schema, yet rejected MTU \"big\": %v", c.Judge, err)
			}
		})
	}
	t.Run("unknown judge", func(t *testing.T) {
		_, _, err := Run(Command(context.Background(), root, nil, "0.1", "configdrive", good))
		var exit interface{ ExitCode() int }
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("judge 0.1: %v, want exit 2", err)
		}
	})
}
