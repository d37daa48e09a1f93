package main

import (
	"context"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// Dynamic shell completion: the committed scripts call `mdctl __complete`,
// which lands here. Names come from the store the flags name, read-only
// (no store: no names, never a new store).

type cobraComplete = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)

// completeNames offers the names of one kind of record as the first
// argument (list reads them from a store).
func completeNames(f *factory, list func(context.Context, store.Reader) ([]string, error)) cobraComplete {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return storeNames(cmd.Context(), f, list), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeNamesFlag is completeNames for a flag's value.
func completeNamesFlag(f *factory, list func(context.Context, store.Reader) ([]string, error)) cobraComplete {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return storeNames(cmd.Context(), f, list), cobra.ShellCompDirectiveNoFileComp
	}
}

func storeNames(ctx context.Context, f *factory, list func(context.Context, store.Reader) ([]string, error)) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	st, err := f.OpenStore(ctx)
	if err != nil {
		return nil
	}
	defer st.Close()
	names, _ := list(ctx, st)
	return names
}

// completeSettingValue offers, after config set KEY, the values KEY takes.
func completeSettingValue(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return completeKeys(cmd, args, toComplete)
	}
	d, ok := store.LookupSetting(args[0])
	if len(args) > 1 || !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	switch d.Kind {
	case store.KindBool:
		return []string{"true", "false"}, cobra.ShellCompDirectiveNoFileComp
	case store.KindEnum, store.KindList:
		if len(d.Allowed) > 0 {
			return completeList(d.Allowed, toComplete), cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
		}
	}
	if d.Default != "" {
		return []string{d.Default + "\tdefault"}, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeList completes the last item of a comma-separated list, not
// offering what the list already holds: "api,ag" → "api,agent".
func completeList(allowed []string, toComplete string) []string {
	done := toComplete[:strings.LastIndex(toComplete, ",")+1]
	var out []string
	for _, a := range allowed {
		if !slices.Contains(strings.Split(done, ","), a) {
			out = append(out, done+a)
		}
	}
	return out
}

func completeComponents(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return completeList(server.AllComponents, toComplete), cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

var completeRoutes = cobra.FixedCompletions([]string{dataplane.GuestRoutesDHCP, dataplane.GuestRoutesStatic}, cobra.ShellCompDirectiveNoFileComp)
