package targets

import "github.com/mdctl/mdctl/bench/rig"

// mdctlTargets are mdctl's own servers, judged against their peers.
func mdctlTargets() []rig.Target { return nil }

// mdctlChildren are the child servers mdctl's targets spawn.
func mdctlChildren() map[string]ChildFunc { return map[string]ChildFunc{} }
