//go:build tools

package tools

import (
	_ "github.com/spf13/cobra"
	_ "modernc.org/sqlite"
	_ "gopkg.in/yaml.v3"
	_ "github.com/vishvananda/netns"
	_ "github.com/vishvananda/netlink"
	_ "github.com/coreos/go-iptables/iptables"
	_ "github.com/charmbracelet/bubbletea"
	_ "github.com/charmbracelet/lipgloss"
	_ "github.com/charmbracelet/bubbles/table"
	_ "golang.org/x/sync/errgroup"
	_ "github.com/google/uuid"
	_ "golang.org/x/time/rate"
)
