// Command berth is an OCI container registry.
//
//	berth serve [-c FILE]          serve (defaults without -c)
//	berth -c FILE server           the same, in Angos's spelling
//	berth config check -c FILE     report every problem in a configuration
//	berth version
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
