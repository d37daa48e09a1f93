// Package completions holds mdctl's shell completion scripts, generated
// from the cobra command tree: regenerate them with `make completions` or
// `go generate ./completions`, never edit them by hand. A test in
// cmd/mdctl fails when they are out of date.
package completions

//go:generate sh -c "go run ../cmd/mdctl completion bash > mdctl.bash"
//go:generate sh -c "go run ../cmd/mdctl completion zsh > mdctl.zsh"
//go:generate sh -c "go run ../cmd/mdctl completion fish > mdctl.fish"
//go:generate sh -c "go run ../cmd/mdctl completion powershell > mdctl.powershell"
