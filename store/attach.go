package store

import (
	"errors"
	"fmt"
	"strings"
)

// MaxVLAN is the highest 802.1Q VLAN id a network may use (4095 is reserved).
const MaxVLAN = 4094

// maxIfName is the longest Linux interface name (IFNAMSIZ-1).
const maxIfName = 15

// CheckAttach checks a network's host attachment (Network.Bridge and
// Network.VLAN): the device must be a name Linux accepts, and a VLAN needs a
// device to ride on. The topology and the CLI report its error at the field.
func CheckAttach(bridge string, vlan int) error {
	if err := CheckVLAN(bridge, vlan); err != nil {
		return err
	}
	if bridge == "" {
		return nil
	}
	if err := CheckIfName(bridge); err != nil {
		return fmt.Errorf("bridge %q: %w", bridge, err)
	}
	return nil
}

// CheckVLAN checks a network's VLAN id against the device it rides on.
func CheckVLAN(bridge string, vlan int) error {
	switch {
	case vlan < 0 || vlan > MaxVLAN:
		return fmt.Errorf("vlan %d: must be 1-%d (0 or unset: untagged)", vlan, MaxVLAN)
	case vlan != 0 && bridge == "":
		return errors.New("vlan needs bridge: the host bridge or trunk interface that carries it")
	case vlan != 0 && len(bridge)+len(fmt.Sprint(vlan))+1 > maxIfName:
		// neutron hashes long names; mdctl asks for a shorter device name instead.
		return fmt.Errorf("vlan %d: sub-interface %s.%d would be longer than %d bytes", vlan, bridge, vlan, maxIfName)
	}
	return nil
}

// CheckIfName reports why name cannot be a Linux interface name (the
// kernel's dev_valid_name), or nil.
func CheckIfName(name string) error {
	switch {
	case name == "":
		return errors.New("empty interface name")
	case len(name) > maxIfName:
		return fmt.Errorf("longer than %d bytes", maxIfName)
	case name == "." || name == "..":
		return errors.New("not an interface name")
	case strings.ContainsAny(name, "/: \t\n"):
		return errors.New("an interface name holds no '/', ':' or white space")
	}
	return nil
}
