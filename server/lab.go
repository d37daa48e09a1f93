package server

import (
	"context"
	"fmt"

	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// LabGuests is the lab guest for every instance port in the store, with
// the metadata routes the plan for cfg gives them: what `mdctl lab up`
// builds and what `mdctl trace` looks into.
func LabGuests(ctx context.Context, st store.Reader, cfg store.Config) ([]dataplane.Guest, error) {
	d, err := PlanFromStore(ctx, st, cfg)
	if err != nil {
		return nil, err
	}
	insts, err := st.ListInstances(ctx)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	views := make([]store.InstanceView, 0, len(insts))
	for _, in := range insts {
		v, err := st.InstanceView(ctx, in.ID)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", in.Name, err)
		}
		views = append(views, v)
	}
	return dataplane.Guests(d, views), nil
}
