package topology

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mdctl/mdctl/store"
)

// CreateRouter creates one router (and its project when missing); it
// refuses a name already taken.
func CreateRouter(ctx context.Context, st store.Store, spec RouterSpec) (store.Router, Result, error) {
	res, err := apply(ctx, st, &Topology{Routers: []RouterSpec{spec}}, mustNotExist("router", spec.Name, func(tx store.Tx) error {
		_, err := tx.GetRouter(ctx, spec.Name)
		return err
	}))
	if err != nil {
		return store.Router{}, res, err
	}
	r, err := st.GetRouter(ctx, spec.Name)
	return r, res, err
}

// CreateNetwork creates one network with its subnets, DHCP port and, when
// spec.Router is set, its router interface.
func CreateNetwork(ctx context.Context, st store.Store, spec NetworkSpec) (store.Network, Result, error) {
	res, err := apply(ctx, st, &Topology{Networks: []NetworkSpec{spec}}, mustNotExist("network", spec.Name, func(tx store.Tx) error {
		_, err := tx.GetNetwork(ctx, spec.Name)
		return err
	}))
	if err != nil {
		return store.Network{}, res, err
	}
	n, err := st.GetNetwork(ctx, spec.Name)
	return n, res, err
}

// CreateInstance creates one instance with a port on each of its networks.
func CreateInstance(ctx context.Context, st store.Store, spec InstanceSpec) (store.Instance, Result, error) {
	res, err := apply(ctx, st, &Topology{Instances: []InstanceSpec{spec}}, mustNotExist("instance", spec.Name, func(tx store.Tx) error {
		_, err := tx.GetInstance(ctx, spec.Name)
		return err
	}))
	if err != nil {
		return store.Instance{}, res, err
	}
	in, err := st.GetInstance(ctx, spec.Name)
	return in, res, err
}

// mustNotExist turns a lookup into "already exists" unless it found nothing.
func mustNotExist(kind, name string, get func(tx store.Tx) error) func(tx store.Tx) error {
	return func(tx store.Tx) error {
		if name == "" {
			return nil // Validate reports the missing name
		}
		err := get(tx)
		switch {
		case err == nil:
			return fmt.Errorf("%s %s already exists; change it with mdctl apply or delete it first: %w", kind, name, store.ErrConflict)
		case errors.Is(err, store.ErrNotFound):
			return nil
		}
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
}

// DeleteInstance deletes an instance with its ports and password.
func DeleteInstance(ctx context.Context, st store.Store, ref string) (store.Instance, error) {
	var in store.Instance
	err := st.Update(ctx, func(tx store.Tx) error {
		var err error
		if in, err = tx.GetInstance(ctx, ref); err != nil {
			return fmt.Errorf("instance %s: %w", ref, err)
		}
		return tx.DeleteInstance(ctx, in.ID)
	})
	return in, err
}

// DeleteRouter deletes a router with its interface ports; its networks
// become isolated (DHCP-namespace metadata only).
func DeleteRouter(ctx context.Context, st store.Store, ref string) (store.Router, error) {
	var r store.Router
	err := st.Update(ctx, func(tx store.Tx) error {
		var err error
		if r, err = tx.GetRouter(ctx, ref); err != nil {
			return fmt.Errorf("router %s: %w", ref, err)
		}
		return tx.DeleteRouter(ctx, r.ID)
	})
	return r, err
}

// DeleteNetwork deletes a network with its subnets, DHCP and router ports.
// Like neutron it refuses while instances still have ports on it.
func DeleteNetwork(ctx context.Context, st store.Store, ref string) (store.Network, error) {
	var n store.Network
	err := st.Update(ctx, func(tx store.Tx) error {
		var err error
		if n, err = tx.GetNetwork(ctx, ref); err != nil {
			return fmt.Errorf("network %s: %w", ref, err)
		}
		ports, err := tx.ListPorts(ctx, store.PortFilter{NetworkIDs: []string{n.ID}, DeviceOwners: []string{store.OwnerCompute}})
		if err != nil {
			return fmt.Errorf("network %s: list ports: %w", n.Name, err)
		}
		if len(ports) > 0 {
			var names []string
			for _, p := range ports {
				name := p.DeviceID
				if in, err := tx.GetInstance(ctx, p.DeviceID); err == nil {
					name = in.Name
				}
				names = append(names, name)
			}
			return fmt.Errorf("network %s is in use by instances %s; delete them first: %w", n.Name, strings.Join(names, ", "), store.ErrConflict)
		}
		return tx.DeleteNetwork(ctx, n.ID)
	})
	return n, err
}
