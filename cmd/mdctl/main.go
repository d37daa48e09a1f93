// Command mdctl is the operator's tool for mdctl, an OpenStack-compatible
// instance-metadata service: it seeds the store (apply, instance, network,
// router), switches settings (config) and runs the service (serve).
// Commands parse flags, call one package and print; they hold no logic
// another command or package needs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], systemIO(), os.Getenv)
	stop()
	os.Exit(code)
}
