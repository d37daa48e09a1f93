package main

import (
	"io"

	"github.com/spf13/cobra"
)

func newCmdCompletion(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print the completion script for a shell. The same scripts are committed in
completions/ (regenerate them with make completions).`,
		Example: `  source <(mdctl completion bash)
  mdctl completion zsh > "${fpath[1]}/_mdctl"
  mdctl completion fish > ~/.config/fish/completions/mdctl.fish
  mdctl completion powershell | Out-String | Invoke-Expression`,
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args:      exactArgs(1, "one shell: bash, zsh, fish or powershell"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeCompletion(cmd.Root(), args[0], f.IO.Out)
		},
	}
}

// writeCompletion writes root's completion script for shell.
func writeCompletion(root *cobra.Command, shell string, w io.Writer) error {
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(w, true)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(w)
	}
	return usageErrorf("completion: unknown shell %q; use bash, zsh, fish or powershell", shell)
}
