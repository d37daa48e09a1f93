package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
)

// LegacyDataDir is the data dir (root's default) whose data plane keeps the
// names every mdctl used before names came from the data dir:
// DefaultSegmentNamespace and DefaultGuestPrefix. An existing single install
// upgrades without touching its kernel state.
const LegacyDataDir = "/var/lib/mdctl"

// profileRE is what a --profile name may be: short enough that guest
// namespace names stay typeable, and free of anything a name cannot hold.
var profileRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,15}$`)

// ForDataDir names the data plane that belongs to one mdctl, so that several
// on one host (several data dirs, or test runs) never touch each other's
// namespaces, guests, rules or dnsmasq. The name is profile when given, else
// a short hash of the absolute data dir; LegacyDataDir without a profile
// keeps the legacy names. The segment namespace is "mdctl-seg-<name>" (and
// so is the owner mark), lab guests are "mdctl-<name>-<instance>" and the
// state dir is /run/mdctl/<segment namespace>.
func ForDataDir(dataDir, profile string) (Options, error) {
	name := profile
	if name == "" {
		abs, err := filepath.Abs(dataDir)
		if err != nil {
			return Options{}, fmt.Errorf("data dir %s: %w", dataDir, err)
		}
		if abs == LegacyDataDir {
			return Options{SegmentNamespace: DefaultSegmentNamespace, GuestPrefix: DefaultGuestPrefix}, nil
		}
		sum := sha256.Sum256([]byte(abs))
		name = hex.EncodeToString(sum[:4])
	} else if !profileRE.MatchString(name) || name == "seg" || name == "vm" {
		return Options{}, fmt.Errorf("profile %q: use 1 to 16 of a-z, 0-9 and -, starting with a letter or digit (not seg or vm)", name)
	}
	return Options{SegmentNamespace: DefaultSegmentNamespace + "-" + name, GuestPrefix: "mdctl-" + name + "-"}, nil
}
